//! Where a forwarding client connects, and the stream it gets.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream, ToSocketAddrs};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::Duration;

/// A collector's address: `unix:PATH` or `tcp://HOST:PORT`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Endpoint {
    /// A Unix stream socket at this path.
    Unix(PathBuf),
    /// A TCP address, `host:port`; the host is resolved at each connect.
    Tcp(String),
}

/// Why an address, or the options around it, are not usable.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ForwardError {
    /// The address does not parse.
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
}

impl Endpoint {
    /// Parses `unix:PATH` or `tcp://HOST:PORT`.
    pub fn parse(address: &str) -> Result<Endpoint, ForwardError> {
        let bad = |reason| ForwardError::Address {
            address: address.to_string(),
            reason,
        };
        if let Some(path) = address.strip_prefix("unix:") {
            if path.is_empty() {
                return Err(bad("the unix: address has no path"));
            }
            return Ok(Endpoint::Unix(PathBuf::from(path)));
        }
        if let Some(hp) = address.strip_prefix("tcp://") {
            let Some((host, port)) = hp.rsplit_once(':') else {
                return Err(bad("a tcp:// address needs a port: tcp://HOST:PORT"));
            };
            if host.is_empty() {
                return Err(bad("the tcp:// address has no host"));
            }
            match port.parse::<u16>() {
                Ok(p) if p > 0 => {}
                _ => return Err(bad("the port is not a number from 1 to 65535")),
            }
            return Ok(Endpoint::Tcp(hp.to_string()));
        }
        Err(bad("the scheme is not unix: or tcp://"))
    }

    pub(crate) fn connect(&self, timeout: Duration) -> io::Result<Stream> {
        match self {
            Endpoint::Unix(p) => UnixStream::connect(p).map(Stream::Unix),
            Endpoint::Tcp(hp) => {
                let mut last = io::Error::new(io::ErrorKind::NotFound, "no address resolved");
                for addr in hp.to_socket_addrs()? {
                    match TcpStream::connect_timeout(&addr, timeout) {
                        Ok(s) => {
                            s.set_nodelay(true)?;
                            return Ok(Stream::Tcp(s));
                        }
                        Err(e) => last = e,
                    }
                }
                Err(last)
            }
        }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Unix(p) => write!(f, "unix:{}", p.display()),
            Endpoint::Tcp(hp) => write!(f, "tcp://{hp}"),
        }
    }
}

/// A connected stream of either kind.
#[derive(Debug)]
pub(crate) enum Stream {
    Unix(UnixStream),
    Tcp(TcpStream),
}

impl Stream {
    pub(crate) fn try_clone(&self) -> io::Result<Stream> {
        Ok(match self {
            Stream::Unix(s) => Stream::Unix(s.try_clone()?),
            Stream::Tcp(s) => Stream::Tcp(s.try_clone()?),
        })
    }

    pub(crate) fn set_read_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        match self {
            Stream::Unix(s) => s.set_read_timeout(t),
            Stream::Tcp(s) => s.set_read_timeout(t),
        }
    }

    pub(crate) fn set_write_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        match self {
            Stream::Unix(s) => s.set_write_timeout(t),
            Stream::Tcp(s) => s.set_write_timeout(t),
        }
    }

    pub(crate) fn shutdown(&self) {
        let _ = match self {
            Stream::Unix(s) => s.shutdown(Shutdown::Both),
            Stream::Tcp(s) => s.shutdown(Shutdown::Both),
        };
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Unix(s) => s.read(buf),
            Stream::Tcp(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Unix(s) => s.write(buf),
            Stream::Tcp(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_parse_or_say_what_is_wrong() {
        assert_eq!(
            Endpoint::parse("unix:/tmp/a.sock").unwrap(),
            Endpoint::Unix("/tmp/a.sock".into())
        );
        assert_eq!(
            Endpoint::parse("tcp://127.0.0.1:9000").unwrap(),
            Endpoint::Tcp("127.0.0.1:9000".into())
        );
        assert_eq!(
            Endpoint::parse("tcp://[::1]:9000").unwrap().to_string(),
            "tcp://[::1]:9000"
        );
        for (bad, why) in [
            ("udp://h:1", "scheme"),
            ("tcp://h", "needs a port"),
            ("tcp://h:0", "port"),
            ("tcp://h:x", "port"),
            ("tcp://:9", "no host"),
            ("unix:", "no path"),
        ] {
            let e = Endpoint::parse(bad).unwrap_err().to_string();
            assert!(e.contains(why) && e.contains(bad), "{bad}: {e}");
        }
    }
}
