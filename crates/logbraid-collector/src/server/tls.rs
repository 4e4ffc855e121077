//! The TLS listeners: `tls://` (the native protocol) and `syslog-tls://`
//! (RFC 5425: octet-counted syslog); `otlp-http://` and `otlp-grpc://`
//! use the same handshake when the collector has a certificate. A connection's handshake runs in its
//! own task, in its slot, within the `HELLO` timeout; then the connection
//! is served by the same code as its plaintext twin, on the decrypted
//! stream.
//!
//! | peer | outcome |
//! |---|---|
//! | speaks TLS, certificate verified (or none required) | served |
//! | plaintext (the first record is not TLS) | closed, counted as [`Kind::NotTls`] |
//! | no certificate where one is required, one of another authority, no common protocol | closed, counted as [`Kind::TlsHandshake`] |
//! | no complete handshake within the `HELLO` timeout | closed, counted as [`Kind::TlsHandshake`] |
//!
//! With a client certificate, the native session is bound to the
//! certificate's identity (its SHA-256): the client id is scoped by it.

use std::sync::Arc;

use logbraid::tls::{identity, rustls, Credential};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::TlsAcceptor;

use super::{Conn, Protocol};
use crate::diag::Kind;

/// Why a handshake failed, as counted: a peer that is not speaking TLS at
/// all, or one whose TLS was refused.
fn kind_of(e: &std::io::Error) -> Kind {
    match e.get_ref().and_then(|e| e.downcast_ref::<rustls::Error>()) {
        Some(rustls::Error::InvalidMessage(_)) => Kind::NotTls,
        _ => Kind::TlsHandshake,
    }
}

impl Conn<'_> {
    /// Completes the TLS handshake on `s`, then serves the connection as
    /// `proto` (a TLS protocol) speaks inside it.
    pub(super) async fn tls<S>(self, s: S, proto: Protocol)
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let Some((mut s, cert)) = self.handshake(s, None).await else {
            return;
        };
        match proto.inner() {
            Protocol::Native => self.native(&mut s, cert).await,
            inner => self.records(&mut s, inner).await,
        }
    }

    /// Completes the TLS handshake on `s`, offering the application
    /// protocol `alpn` if one is given (HTTP/2 for gRPC): the decrypted
    /// stream and the identity of the client's certificate, if it showed
    /// one. `None` (counted and said) when the handshake failed.
    pub(super) async fn handshake<S>(
        &self,
        s: S,
        alpn: Option<&[u8]>,
    ) -> Option<(tokio_rustls::server::TlsStream<S>, Option<Arc<str>>)>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let config = self.server.config.tls.clone().map(|c| match alpn {
            Some(p) => {
                let mut c = (*c).clone();
                c.alpn_protocols = vec![p.to_vec()];
                Arc::new(c)
            }
            None => c,
        });
        let Some(config) = config else {
            self.reject(
                Kind::TlsHandshake,
                &"this listener has no certificate (--tls-cert, --tls-key)",
            );
            return None;
        };
        let timeout = self.server.config.hello_timeout;
        let handshake = tokio::time::timeout(timeout, TlsAcceptor::from(config).accept(s));
        let accepted = tokio::select! {
            r = handshake => r,
            _ = self.slot.evicted() => {
                self.reject(
                    Kind::Evicted,
                    &"TLS handshake not done, evicted to make room for a new connection",
                );
                return None;
            }
        };
        let s = match accepted {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                self.reject(kind_of(&e), &format_args!("TLS: {e}"));
                return None;
            }
            Err(_) => {
                self.reject(
                    Kind::TlsHandshake,
                    &format_args!("no TLS handshake within {timeout:?}"),
                );
                return None;
            }
        };
        let cert = s
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|c| c.first())
            .map(|c| Arc::from(identity(Credential::Certificate(c))));
        Some((s, cert))
    }
}
