//! Where a forwarding client connects, and the stream it gets.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream, ToSocketAddrs};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
#[cfg(feature = "tls")]
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::endpoint::{Addr, Endpoint, Protocol};

/// Why an address, or the options around it, are not usable.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ForwardError {
    /// The endpoint is not one a client can connect to.
    #[error("invalid collector address {address:?}: {reason}")]
    Address {
        /// What was given.
        address: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The client id is empty or longer than 255 bytes.
    #[error("invalid client id {0:?}: it must be 1 to 255 bytes")]
    ClientId(String),
    /// The I/O thread could not start.
    #[error("cannot start the forwarding thread: {0}")]
    Thread(String),
    /// The TLS settings are incomplete, or their files unusable.
    #[error("{key}: {reason}")]
    Tls {
        /// The setting at fault, as the configuration file names it
        /// (`tls_ca`, `tls_cert`, `tls_key`, `tls_server_name`).
        key: &'static str,
        /// What is wrong with it.
        reason: String,
    },
}

/// How a client speaks TLS to a `tls://` collector: the files are read
/// when the [`ForwardSink`](super::ForwardSink) is built.
///
/// | field | meaning |
/// |---|---|
/// | `ca` | PEM certificates the collector's certificate must chain to (required) |
/// | `cert`, `key` | PEM certificate chain and private key shown to a collector that requires client certificates |
/// | `server_name` | the name the collector's certificate must carry; default the endpoint's host |
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TlsOptions {
    /// The certificate authorities that vouch for the collector.
    pub ca: Option<PathBuf>,
    /// This client's certificate chain, for mutual TLS.
    pub cert: Option<PathBuf>,
    /// The private key of `cert`.
    pub key: Option<PathBuf>,
    /// The name to verify instead of the endpoint's host.
    pub server_name: Option<String>,
}

/// Where a client finds its token when none is given.
pub const TOKEN_ENV: &str = "LOGBRAID_TOKEN";
/// Where a client finds [`TlsOptions::ca`] when none is given.
pub const CA_ENV: &str = "LOGBRAID_TLS_CA";
/// Where a client finds [`TlsOptions::cert`] when none is given.
pub const CERT_ENV: &str = "LOGBRAID_TLS_CERT";
/// Where a client finds [`TlsOptions::key`] when none is given.
pub const KEY_ENV: &str = "LOGBRAID_TLS_KEY";
/// Where a client finds [`TlsOptions::server_name`] when none is given.
pub const SERVER_NAME_ENV: &str = "LOGBRAID_TLS_SERVER_NAME";

impl TlsOptions {
    /// These options, each one not set taken from its environment
    /// variable ([`CA_ENV`], [`CERT_ENV`], [`KEY_ENV`],
    /// [`SERVER_NAME_ENV`]) when that is set and not empty.
    pub fn or_env(self) -> TlsOptions {
        let var = |name| std::env::var_os(name).filter(|v| !v.is_empty());
        TlsOptions {
            ca: self.ca.or_else(|| var(CA_ENV).map(PathBuf::from)),
            cert: self.cert.or_else(|| var(CERT_ENV).map(PathBuf::from)),
            key: self.key.or_else(|| var(KEY_ENV).map(PathBuf::from)),
            server_name: self
                .server_name
                .or_else(|| var(SERVER_NAME_ENV).and_then(|v| v.into_string().ok())),
        }
    }

    /// The configuration key of the first field set, if any.
    pub fn first_set(&self) -> Option<&'static str> {
        [
            ("tls_ca", self.ca.is_some()),
            ("tls_cert", self.cert.is_some()),
            ("tls_key", self.key.is_some()),
            ("tls_server_name", self.server_name.is_some()),
        ]
        .into_iter()
        .find_map(|(key, set)| set.then_some(key))
    }

    /// The rules between the fields and the endpoint, each error naming
    /// the setting as the configuration file spells it (`tls_cert`). The
    /// CA, which may still come from the environment, is required later,
    /// when the sink is built.
    pub fn check(&self, endpoint: &Endpoint) -> Result<(), (&'static str, String)> {
        if !endpoint.protocol.is_tls() {
            return match self.first_set() {
                Some(key) => Err((
                    key,
                    format!("is for a tls:// collector, and {endpoint} is not one"),
                )),
                None => Ok(()),
            };
        }
        match (&self.cert, &self.key) {
            (Some(_), None) => Err(("tls_key", "missing: tls_cert needs its key".into())),
            (None, Some(_)) => Err(("tls_cert", "missing: tls_key needs its certificate".into())),
            _ => Ok(()),
        }
    }
}

/// Checks that a client can connect to `endpoint`: the native protocol
/// or OTLP/HTTP (with the `otlp` feature) and, over TCP, a port other
/// than 0.
pub(crate) fn check_client(endpoint: &Endpoint) -> Result<(), ForwardError> {
    let bad = |reason| ForwardError::Address {
        address: endpoint.to_string(),
        reason,
    };
    let otlp = endpoint.protocol == Protocol::OtlpHttp;
    if endpoint.protocol.inner() != Protocol::Native && !otlp {
        return Err(bad(
            "a forwarding client speaks the native protocol (unix:PATH, tcp://HOST:PORT \
             or tls://HOST:PORT) or OTLP/HTTP (otlp-http://HOST:PORT)",
        ));
    }
    // Wrong whatever the build: said before what this build lacks.
    if endpoint.port() == Some(0) {
        return Err(bad("a collector's port cannot be 0"));
    }
    if otlp && cfg!(not(feature = "otlp")) {
        return Err(bad(
            "this build of logbraid has no OTLP exporter (the cargo feature \"otlp\")",
        ));
    }
    if endpoint.protocol.is_tls() && cfg!(not(feature = "tls")) {
        return Err(bad(
            "this build of logbraid has no TLS (the cargo feature \"tls\")",
        ));
    }
    Ok(())
}

/// A checked endpoint with, for `tls://`, its TLS settings read from
/// their files.
#[derive(Clone, Debug)]
pub(crate) struct Target {
    pub(crate) endpoint: Endpoint,
    #[cfg(feature = "tls")]
    tls: Option<(
        Arc<rustls::ClientConfig>,
        rustls_pki_types::ServerName<'static>,
    )>,
}

impl Target {
    /// Checks the endpoint and the TLS settings together, and reads the
    /// TLS files.
    pub(crate) fn new(endpoint: Endpoint, tls: &TlsOptions) -> Result<Target, ForwardError> {
        check_client(&endpoint)?;
        if endpoint.protocol.is_otlp() {
            return Err(ForwardError::Address {
                address: endpoint.to_string(),
                reason: "an OTLP collector is reached through forward::sink, not a ForwardSink",
            });
        }
        tls.check(&endpoint)
            .map_err(|(key, reason)| ForwardError::Tls { key, reason })?;
        if endpoint.protocol.is_tls() && tls.ca.is_none() {
            return Err(ForwardError::Tls {
                key: "tls_ca",
                reason: format!(
                    "missing: {endpoint} needs the PEM file of the certificate authority \
                     that signed the collector's certificate (or {CA_ENV})"
                ),
            });
        }
        #[cfg(feature = "tls")]
        {
            let config = match (&tls.ca, endpoint.protocol.is_tls()) {
                (Some(ca), true) => {
                    let cert_key = tls.cert.as_deref().zip(tls.key.as_deref());
                    let config = crate::tls::client_config(ca, cert_key).map_err(|e| {
                        let key = match &e {
                            crate::tls::TlsError::File { path, .. } if path == ca => "tls_ca",
                            crate::tls::TlsError::File { path, .. }
                                if Some(path) == tls.cert.as_ref() =>
                            {
                                "tls_cert"
                            }
                            _ => "tls_key",
                        };
                        ForwardError::Tls {
                            key,
                            reason: e.to_string(),
                        }
                    })?;
                    let host = match (&tls.server_name, &endpoint.addr) {
                        (Some(name), _) => name.clone(),
                        (None, Addr::Inet(hp)) => {
                            let host = hp.rsplit_once(':').map_or(hp.as_str(), |(h, _)| h);
                            host.trim_start_matches('[')
                                .trim_end_matches(']')
                                .to_string()
                        }
                        (None, Addr::Unix(_)) => String::new(),
                    };
                    let name =
                        rustls_pki_types::ServerName::try_from(host.clone()).map_err(|_| {
                            ForwardError::Tls {
                                key: "tls_server_name",
                                reason: format!("{host:?} is neither a DNS name nor an IP address"),
                            }
                        })?;
                    Some((config, name))
                }
                _ => None,
            };
            Ok(Target {
                endpoint,
                tls: config,
            })
        }
        #[cfg(not(feature = "tls"))]
        Ok(Target { endpoint })
    }
}

/// How long a TLS handshake may take.
#[cfg(feature = "tls")]
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Connects to a native endpoint (checked by [`Target::new`]). On a Unix
/// socket the listener must run as this process's user or as root
/// (`SO_PEERCRED`): records are not handed to whoever took the path.
/// Over TLS the handshake is complete when this returns: the collector's
/// certificate was verified.
pub(crate) fn connect(target: &Target, timeout: Duration) -> io::Result<Stream> {
    let endpoint = &target.endpoint;
    match &endpoint.addr {
        Addr::Unix(p) => {
            let s = UnixStream::connect(p)?;
            let uid = rustix::net::sockopt::socket_peercred(&s)?.uid.as_raw();
            let me = rustix::process::geteuid().as_raw();
            if uid != me && uid != 0 {
                return Err(io::Error::new(
                    io::ErrorKind::PermissionDenied,
                    format!(
                        "{} is served by uid {uid}, neither this user ({me}) nor root: \
                         not sending to it",
                        p.display()
                    ),
                ));
            }
            Ok(Stream::Unix(s))
        }
        Addr::Inet(hp) => {
            let mut last = io::Error::new(io::ErrorKind::NotFound, "no address resolved");
            for addr in hp.to_socket_addrs()? {
                match TcpStream::connect_timeout(&addr, timeout) {
                    Ok(s) => {
                        s.set_nodelay(true)?;
                        #[cfg(feature = "tls")]
                        if let Some((config, name)) = &target.tls {
                            return TlsStream::handshake(s, config, name).map(Stream::Tls);
                        }
                        return Ok(Stream::Tcp(s));
                    }
                    Err(e) => last = e,
                }
            }
            Err(last)
        }
    }
}

/// A connected stream of any kind.
#[derive(Debug)]
pub(crate) enum Stream {
    Unix(UnixStream),
    Tcp(TcpStream),
    #[cfg(feature = "tls")]
    Tls(Arc<TlsStream>),
}

impl Stream {
    pub(crate) fn try_clone(&self) -> io::Result<Stream> {
        Ok(match self {
            Stream::Unix(s) => Stream::Unix(s.try_clone()?),
            Stream::Tcp(s) => Stream::Tcp(s.try_clone()?),
            #[cfg(feature = "tls")]
            Stream::Tls(s) => Stream::Tls(Arc::clone(s)),
        })
    }

    fn tcp(&self) -> Option<&TcpStream> {
        match self {
            Stream::Unix(_) => None,
            Stream::Tcp(s) => Some(s),
            #[cfg(feature = "tls")]
            Stream::Tls(s) => Some(&s.tcp),
        }
    }

    pub(crate) fn set_read_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        match (self, self.tcp()) {
            (Stream::Unix(s), _) => s.set_read_timeout(t),
            (_, Some(s)) => s.set_read_timeout(t),
            _ => Ok(()),
        }
    }

    pub(crate) fn set_write_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        match (self, self.tcp()) {
            (Stream::Unix(s), _) => s.set_write_timeout(t),
            (_, Some(s)) => s.set_write_timeout(t),
            _ => Ok(()),
        }
    }

    pub(crate) fn shutdown(&self) {
        let _ = match (self, self.tcp()) {
            (Stream::Unix(s), _) => s.shutdown(Shutdown::Both),
            (_, Some(s)) => s.shutdown(Shutdown::Both),
            _ => Ok(()),
        };
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Unix(s) => s.read(buf),
            Stream::Tcp(s) => s.read(buf),
            #[cfg(feature = "tls")]
            Stream::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Unix(s) => s.write(buf),
            Stream::Tcp(s) => s.write(buf),
            #[cfg(feature = "tls")]
            Stream::Tls(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A TLS connection shared by the client's two threads: the sender
/// encrypts under the lock and writes the socket outside it; the
/// acknowledgement reader reads the socket outside the lock and decrypts
/// under it. Only the sender writes the socket, so TLS records leave in
/// the order rustls made them, and neither thread blocks on the socket
/// while holding the lock.
#[cfg(feature = "tls")]
#[derive(Debug)]
pub(crate) struct TlsStream {
    tcp: TcpStream,
    tls: Mutex<rustls::ClientConnection>,
}

#[cfg(feature = "tls")]
impl TlsStream {
    fn handshake(
        mut tcp: TcpStream,
        config: &Arc<rustls::ClientConfig>,
        name: &rustls_pki_types::ServerName<'static>,
    ) -> io::Result<Arc<TlsStream>> {
        let mut conn = rustls::ClientConnection::new(Arc::clone(config), name.clone())
            .map_err(io::Error::other)?;
        tcp.set_read_timeout(Some(HANDSHAKE_TIMEOUT))?;
        tcp.set_write_timeout(Some(HANDSHAKE_TIMEOUT))?;
        while conn.is_handshaking() {
            conn.complete_io(&mut tcp)
                .map_err(|e| io::Error::new(e.kind(), format!("TLS handshake failed: {e}")))?;
        }
        Ok(Arc::new(TlsStream {
            tcp,
            tls: Mutex::new(conn),
        }))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, rustls::ClientConnection> {
        // rustls leaves the connection consistent between its calls.
        self.tls.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        let mut raw = vec![0u8; 16 << 10];
        loop {
            match self.lock().reader().read(buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                done => return done,
            }
            let n = (&self.tcp).read(&mut raw)?;
            let mut conn = self.lock();
            let mut rest = &raw[..n];
            loop {
                conn.read_tls(&mut rest)?;
                conn.process_new_packets()
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
                if rest.is_empty() {
                    break;
                }
            }
        }
    }

    fn write(&self, buf: &[u8]) -> io::Result<usize> {
        let mut out = Vec::new();
        let n = {
            let mut conn = self.lock();
            let n = conn.writer().write(buf)?;
            while conn.wants_write() {
                conn.write_tls(&mut out)?;
            }
            n
        };
        (&self.tcp).write_all(&out)?;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_needs_the_native_protocol_and_a_port() {
        assert_eq!(check_client(&Endpoint::unix("/tmp/a.sock")), Ok(()));
        assert_eq!(check_client(&Endpoint::tcp("[::1]:9000")), Ok(()));
        let otlp = check_client(&Endpoint::parse("otlp-http://h:4318").unwrap());
        assert_eq!(otlp.is_ok(), cfg!(feature = "otlp"), "{otlp:?}");
        for (url, why) in [
            ("python-tcp://h:9", "native protocol"),
            ("syslog-tls://h:9", "native protocol"),
            ("syslog-udp://h:9", "native protocol"),
            ("otlp-grpc://h:9", "OTLP/HTTP (otlp-http://HOST:PORT)"),
            ("tcp://h:0", "port cannot be 0"),
            ("otlp-http://h:0", "port cannot be 0"),
        ] {
            let e = check_client(&Endpoint::parse(url).unwrap())
                .unwrap_err()
                .to_string();
            assert!(e.contains(why) && e.contains(url), "{url}: {e}");
        }
    }
}
