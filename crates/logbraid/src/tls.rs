//! TLS settings read from PEM files, for both ends (cargo feature `tls`):
//! a forwarding client's [`client_config`] and the collector's
//! [`server_config`], both on rustls with the ring provider.
//!
//! Certificates and keys are read once, when the client or the listener is
//! built, and every problem with them is an error naming the file: a
//! missing file, a file with no certificate or no private key in it, a key
//! that does not belong to the certificate.
//!
//! [`identity`] names the credential a client proved: the SHA-256
//! fingerprint of its certificate, or of the token it presented. The
//! collector scopes client ids by it (`PROTOCOL.md`, §4).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

pub use rustls;

/// Why TLS settings cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A PEM file is missing, unreadable, or holds nothing usable.
    #[error("{what} {path}: {reason}")]
    File {
        /// What the file was for (`"certificate file"`, `"key file"`, `"CA file"`).
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// rustls refused the combination (a key that does not match its
    /// certificate, a CA that cannot anchor anything).
    #[error("{0}")]
    Rustls(String),
}

fn file_error(what: &'static str, path: &Path, reason: impl ToString) -> TlsError {
    TlsError::File {
        what,
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

fn provider() -> Arc<CryptoProvider> {
    // ring builds with a C compiler alone (no cmake, no system library);
    // rustls deprecates its provider only for lacking post-quantum key
    // exchange.
    #[allow(deprecated)]
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read(what: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|e| file_error(what, path, e))
}

/// Every certificate of a PEM file, in order; none is an error.
pub fn load_certs(
    what: &'static str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read(what, path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_error(what, path, format!("not valid PEM: {e}")))?;
    if certs.is_empty() {
        return Err(file_error(
            what,
            path,
            "no certificate in it (expected -----BEGIN CERTIFICATE-----)",
        ));
    }
    Ok(certs)
}

/// The first private key of a PEM file (PKCS#8, PKCS#1 or SEC1).
pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let what = "key file";
    let pem = read(what, path)?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| match e {
        rustls_pki_types::pem::Error::NoItemsFound => file_error(
            what,
            path,
            "no private key in it (expected -----BEGIN PRIVATE KEY-----)",
        ),
        e => file_error(what, path, format!("not valid PEM: {e}")),
    })
}

fn roots(path: &Path) -> Result<RootCertStore, TlsError> {
    let what = "CA file";
    let mut roots = RootCertStore::empty();
    for cert in load_certs(what, path)? {
        roots
            .add(cert)
            .map_err(|e| file_error(what, path, format!("unusable certificate: {e}")))?;
    }
    Ok(roots)
}

fn rustls_error(e: impl std::fmt::Display) -> TlsError {
    TlsError::Rustls(e.to_string())
}

/// A client's settings: servers are verified against the certificates of
/// `ca` (PEM); `cert_key`, a certificate chain and its key, is presented to
/// servers that ask for one.
pub fn client_config(
    ca: &Path,
    cert_key: Option<(&Path, &Path)>,
) -> Result<Arc<ClientConfig>, TlsError> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(rustls_error)?
        .with_root_certificates(roots(ca)?);
    let config = match cert_key {
        Some((cert, key)) => {
            let chain = load_certs("certificate file", cert)?;
            builder
                .with_client_auth_cert(chain, load_key(key)?)
                .map_err(|e| {
                    file_error("key file", key, format!("{e} (with {})", cert.display()))
                })?
        }
        None => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

/// A server's settings: `cert` (a chain, PEM, the server's first) and its
/// `key`; with `client_ca`, every client must present a certificate
/// issued by one of its certificates.
pub fn server_config(
    cert: &Path,
    key: &Path,
    client_ca: Option<&Path>,
) -> Result<Arc<ServerConfig>, TlsError> {
    let builder = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(rustls_error)?;
    let builder = match client_ca {
        Some(ca) => {
            let verifier =
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots(ca)?), provider())
                    .build()
                    .map_err(|e| file_error("CA file", ca, e))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let chain = load_certs("certificate file", cert)?;
    let config = builder
        .with_single_cert(chain, load_key(key)?)
        .map_err(|e| file_error("key file", key, format!("{e} (with {})", cert.display())))?;
    Ok(Arc::new(config))
}

/// The identity of a credential: `cert:` and the SHA-256 of a client
/// certificate (DER), or `token:` and the first 16 bytes of the SHA-256
/// of a token, in lower-case hex. The token itself cannot be recovered
/// from it, so it may be written to the collector's state file.
pub fn identity(kind: Credential<'_>) -> String {
    let (prefix, bytes, len) = match kind {
        Credential::Certificate(der) => ("cert:", der, 32),
        Credential::Token(t) => ("token:", t, 16),
    };
    let digest = ring::digest::digest(&ring::digest::SHA256, bytes);
    let mut s = String::with_capacity(prefix.len() + 2 * len);
    s.push_str(prefix);
    for b in &digest.as_ref()[..len] {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// What a client proved, for [`identity`].
#[derive(Clone, Copy, Debug)]
pub enum Credential<'a> {
    /// Its certificate, DER.
    Certificate(&'a [u8]),
    /// The token of its `HELLO`.
    Token(&'a [u8]),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identities_are_sha256_in_hex() {
        // SHA-256("abc") = ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad
        assert_eq!(
            identity(Credential::Token(b"abc")),
            "token:ba7816bf8f01cfea414140de5dae2223"
        );
        assert_eq!(
            identity(Credential::Certificate(b"abc")),
            "cert:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn bad_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "nothing here\n").unwrap();
        let missing = dir.path().join("missing.pem");
        let e = client_config(&missing, None).unwrap_err().to_string();
        assert!(
            e.starts_with(&format!("CA file {}: ", missing.display())),
            "{e}"
        );
        let e = client_config(&empty, None).unwrap_err().to_string();
        assert_eq!(
            e,
            format!(
                "CA file {}: no certificate in it (expected -----BEGIN CERTIFICATE-----)",
                empty.display()
            )
        );

        let ca = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let cert = dir.path().join("cert.pem");
        std::fs::write(&cert, ca.cert.pem()).unwrap();
        let e = server_config(&cert, &empty, None).unwrap_err().to_string();
        assert_eq!(
            e,
            format!(
                "key file {}: no private key in it (expected -----BEGIN PRIVATE KEY-----)",
                empty.display()
            )
        );
        // A key of another certificate.
        let other = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let key = dir.path().join("other.key");
        std::fs::write(&key, other.key_pair.serialize_pem()).unwrap();
        let e = server_config(&cert, &key, None).unwrap_err().to_string();
        assert!(
            e.starts_with(&format!("key file {}: ", key.display())),
            "{e}"
        );
        let good = dir.path().join("good.key");
        std::fs::write(&good, ca.key_pair.serialize_pem()).unwrap();
        server_config(&cert, &good, Some(&cert)).unwrap();
        client_config(&cert, Some((&cert, &good))).unwrap();
    }
}
