//! Where records travel: one URL type for the collector's listeners and
//! for the clients that forward to it.
//!
//! | URL | protocol | address |
//! |---|---|---|
//! | `unix:PATH` | native (`PROTOCOL.md`) | a Unix stream socket |
//! | `python-unix:PATH` | Python `SocketHandler(path, None)` pickles | a Unix stream socket |
//! | `tcp://HOST:PORT` | native | TCP |
//! | `tls://HOST:PORT` | native | TLS over TCP |
//! | `python-tcp://HOST:PORT` | Python `SocketHandler` pickles | TCP |
//! | `python-udp://HOST:PORT` | Python `DatagramHandler` pickles | UDP |
//! | `syslog-tcp://HOST:PORT` | syslog, octet counting or newline framing | TCP |
//! | `syslog-tls://HOST:PORT` | syslog, octet counting (RFC 5425) | TLS over TCP |
//! | `syslog-udp://HOST:PORT` | syslog | UDP |
//! | `otlp-http://HOST:PORT` | OpenTelemetry logs, OTLP/HTTP (`POST /v1/logs`, protobuf or JSON) | TCP (TLS when the collector has a certificate) |
//! | `otlp-grpc://HOST:PORT` | OpenTelemetry logs, OTLP/gRPC (`LogsService/Export`) | TCP (TLS when the collector has a certificate) |
//!
//! A listener may name port 0 (the system picks one); a client may not. A
//! client speaks the native protocol, or OTLP/HTTP to any OpenTelemetry
//! collector (see [`ForwardOptions`](crate::forward::ForwardOptions)).
//!
//! ```
//! use logbraid::endpoint::{Addr, Endpoint, Protocol};
//!
//! let e: Endpoint = "syslog-udp://127.0.0.1:0".parse()?;
//! assert_eq!(e.protocol, Protocol::SyslogUdp);
//! assert_eq!(e.addr, Addr::Inet("127.0.0.1:0".into()));
//! assert_eq!(Endpoint::unix("/run/app.sock").to_string(), "unix:/run/app.sock");
//! # Ok::<(), logbraid::endpoint::EndpointError>(())
//! ```

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

/// What is spoken at an [`Endpoint`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// logbraid's own protocol (`PROTOCOL.md`): batches, acknowledgements.
    Native,
    /// The native protocol inside TLS.
    NativeTls,
    /// Python's `logging.handlers.SocketHandler`: pickles over a stream,
    /// TCP (`python-tcp://`) or a Unix socket (`python-unix:`, what
    /// `SocketHandler(path, None)` connects to).
    PythonTcp,
    /// Python's `logging.handlers.DatagramHandler`: pickles over UDP.
    PythonUdp,
    /// Syslog over TCP (RFC 6587 octet counting or newline framing).
    SyslogTcp,
    /// Syslog over TLS (RFC 5425: octet counting).
    SyslogTls,
    /// Syslog over UDP.
    SyslogUdp,
    /// OpenTelemetry logs over HTTP/1.1 (`POST /v1/logs`).
    OtlpHttp,
    /// OpenTelemetry logs over gRPC (`LogsService/Export`).
    OtlpGrpc,
}

/// The schemes of the `HOST:PORT` URLs, with what each speaks.
const INET_SCHEMES: [(&str, Protocol); 9] = [
    ("tcp://", Protocol::Native),
    ("tls://", Protocol::NativeTls),
    ("python-tcp://", Protocol::PythonTcp),
    ("python-udp://", Protocol::PythonUdp),
    ("syslog-tcp://", Protocol::SyslogTcp),
    ("syslog-tls://", Protocol::SyslogTls),
    ("syslog-udp://", Protocol::SyslogUdp),
    ("otlp-http://", Protocol::OtlpHttp),
    ("otlp-grpc://", Protocol::OtlpGrpc),
];

impl Protocol {
    /// Whether it is carried in datagrams (UDP) rather than a stream.
    pub fn is_datagram(self) -> bool {
        matches!(self, Protocol::PythonUdp | Protocol::SyslogUdp)
    }

    /// Whether it is OpenTelemetry's OTLP (over HTTP or gRPC).
    pub fn is_otlp(self) -> bool {
        matches!(self, Protocol::OtlpHttp | Protocol::OtlpGrpc)
    }

    /// Whether it is carried inside TLS.
    pub fn is_tls(self) -> bool {
        matches!(self, Protocol::NativeTls | Protocol::SyslogTls)
    }

    /// What is spoken inside the TLS of a TLS protocol (the protocol
    /// itself for the others): `Native` for `NativeTls`, `SyslogTcp` for
    /// `SyslogTls`.
    pub fn inner(self) -> Protocol {
        match self {
            Protocol::NativeTls => Protocol::Native,
            Protocol::SyslogTls => Protocol::SyslogTcp,
            p => p,
        }
    }

    /// The scheme of its `HOST:PORT` URLs, `tcp://` for the native protocol.
    pub fn inet_scheme(self) -> &'static str {
        INET_SCHEMES
            .iter()
            .find(|(_, p)| *p == self)
            .map_or("tcp://", |(s, _)| s)
    }
}

/// Where a socket is.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Addr {
    /// A Unix socket path.
    Unix(PathBuf),
    /// `HOST:PORT`, the host a name or an address (`[::1]` for IPv6),
    /// resolved when the socket is bound or connected.
    Inet(String),
}

/// A parsed URL: what is spoken, and where.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Endpoint {
    /// What is spoken.
    pub protocol: Protocol,
    /// Where.
    pub addr: Addr,
}

/// A URL that does not parse: what was given and what is wrong with it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid address {url:?}: {reason}")]
pub struct EndpointError {
    /// What was given.
    pub url: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

impl Endpoint {
    /// The native protocol on a Unix socket: `unix:PATH`.
    pub fn unix(path: impl Into<PathBuf>) -> Endpoint {
        Endpoint {
            protocol: Protocol::Native,
            addr: Addr::Unix(path.into()),
        }
    }

    /// The native protocol over TCP: `tcp://HOST:PORT`.
    pub fn tcp(host_port: impl Into<String>) -> Endpoint {
        Endpoint {
            protocol: Protocol::Native,
            addr: Addr::Inet(host_port.into()),
        }
    }

    /// Python `SocketHandler` pickles on a Unix socket: `python-unix:PATH`.
    pub fn python_unix(path: impl Into<PathBuf>) -> Endpoint {
        Endpoint {
            protocol: Protocol::PythonTcp,
            addr: Addr::Unix(path.into()),
        }
    }

    /// Parses one of the URLs of the [module](self) table.
    pub fn parse(url: &str) -> Result<Endpoint, EndpointError> {
        let bad = |reason| EndpointError {
            url: url.to_string(),
            reason,
        };
        if let Some(path) = url.strip_prefix("unix:") {
            if path.is_empty() {
                return Err(bad("the unix: URL has no path"));
            }
            return Ok(Endpoint::unix(path));
        }
        if let Some(path) = url.strip_prefix("python-unix:") {
            if path.is_empty() {
                return Err(bad("the python-unix: URL has no path"));
            }
            return Ok(Endpoint::python_unix(path));
        }
        let Some((protocol, host_port)) = INET_SCHEMES
            .iter()
            .find_map(|&(scheme, p)| Some((p, url.strip_prefix(scheme)?)))
        else {
            return Err(bad(
                "unknown scheme; use unix:PATH, tcp://, tls://, python-tcp://, python-unix:PATH, \
                 python-udp://, syslog-tcp://, syslog-tls://, syslog-udp://, otlp-http:// or otlp-grpc://",
            ));
        };
        let Some((host, port)) = host_port.rsplit_once(':') else {
            return Err(bad("the URL needs a port: SCHEME://HOST:PORT"));
        };
        if host.is_empty() {
            return Err(bad("the URL has no host"));
        }
        if port.parse::<u16>().is_err() {
            return Err(bad("the port is not a number from 0 to 65535"));
        }
        Ok(Endpoint {
            protocol,
            addr: Addr::Inet(host_port.to_string()),
        })
    }

    /// The port of a `HOST:PORT` address; `None` for a Unix socket.
    pub fn port(&self) -> Option<u16> {
        match &self.addr {
            Addr::Unix(_) => None,
            Addr::Inet(hp) => hp.rsplit_once(':')?.1.parse().ok(),
        }
    }
}

impl FromStr for Endpoint {
    type Err = EndpointError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Endpoint::parse(s)
    }
}

impl fmt::Display for Endpoint {
    /// The URL as [`Endpoint::parse`] reads it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.addr {
            Addr::Unix(p) if self.protocol == Protocol::PythonTcp => {
                write!(f, "python-unix:{}", p.display())
            }
            Addr::Unix(p) => write!(f, "unix:{}", p.display()),
            Addr::Inet(hp) => write!(f, "{}{hp}", self.protocol.inet_scheme()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_scheme_parses_and_prints_back() {
        for (url, protocol) in [
            ("unix:/tmp/a.sock", Protocol::Native),
            ("python-unix:/tmp/p.sock", Protocol::PythonTcp),
            ("python-unix:rel.sock", Protocol::PythonTcp),
            ("tcp://127.0.0.1:9000", Protocol::Native),
            ("tcp://[::1]:9000", Protocol::Native),
            ("tls://logs.example:9021", Protocol::NativeTls),
            ("syslog-tls://h:6514", Protocol::SyslogTls),
            ("python-tcp://0.0.0.0:9020", Protocol::PythonTcp),
            ("python-udp://localhost:0", Protocol::PythonUdp),
            ("syslog-tcp://h:514", Protocol::SyslogTcp),
            ("syslog-udp://h:65535", Protocol::SyslogUdp),
            ("otlp-http://127.0.0.1:4318", Protocol::OtlpHttp),
            ("otlp-grpc://[::1]:4317", Protocol::OtlpGrpc),
        ] {
            let e = Endpoint::parse(url).unwrap();
            assert_eq!(e.protocol, protocol, "{url}");
            assert_eq!(e.to_string(), url);
            assert_eq!(url.parse::<Endpoint>().unwrap(), e);
        }
        assert_eq!(
            Endpoint::parse("unix:/tmp/a.sock").unwrap().addr,
            Addr::Unix("/tmp/a.sock".into())
        );
        assert_eq!(
            Endpoint::parse("python-unix:/tmp/p.sock").unwrap(),
            Endpoint::python_unix("/tmp/p.sock")
        );
        assert_eq!(Endpoint::python_unix("/p").port(), None);
        assert_eq!(Endpoint::parse("tcp://h:9").unwrap().port(), Some(9));
        assert_eq!(Endpoint::unix("/x").port(), None);
        assert!(Protocol::SyslogTls.is_tls() && !Protocol::SyslogTcp.is_tls());
        assert_eq!(Protocol::SyslogTls.inner(), Protocol::SyslogTcp);
        assert_eq!(Protocol::NativeTls.inner(), Protocol::Native);
        assert_eq!(Protocol::PythonTcp.inner(), Protocol::PythonTcp);
        assert!(Protocol::OtlpHttp.is_otlp() && Protocol::OtlpGrpc.is_otlp());
        assert!(!Protocol::OtlpGrpc.is_datagram() && !Protocol::Native.is_otlp());
    }

    #[test]
    fn bad_urls_say_what_is_wrong() {
        for (bad, why) in [
            ("udp://h:1", "unknown scheme"),
            ("tcp:/h:1", "unknown scheme"),
            ("tcp://h", "needs a port"),
            ("tcp://h:65536", "port"),
            ("tcp://h:x", "port"),
            ("syslog-udp://:9", "no host"),
            ("unix:", "no path"),
            ("python-unix:", "no path"),
            ("", "unknown scheme"),
        ] {
            let e = Endpoint::parse(bad).unwrap_err();
            assert_eq!(e.url, bad);
            let shown = e.to_string();
            assert!(
                shown.contains(why) && shown.starts_with(&format!("invalid address {bad:?}: ")),
                "{bad}: {shown}"
            );
        }
    }
}
