//! Where a forwarding client connects, and the stream it gets.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream, ToSocketAddrs};
use std::os::unix::net::UnixStream;
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
}

/// Checks that a client can connect to `endpoint`: the native protocol
/// and, over TCP, a port other than 0.
pub(crate) fn check_client(endpoint: &Endpoint) -> Result<(), ForwardError> {
    let bad = |reason| ForwardError::Address {
        address: endpoint.to_string(),
        reason,
    };
    if endpoint.protocol != Protocol::Native {
        return Err(bad(
            "a forwarding client speaks the native protocol: unix:PATH or tcp://HOST:PORT",
        ));
    }
    if endpoint.port() == Some(0) {
        return Err(bad("a collector's port cannot be 0"));
    }
    Ok(())
}

/// Connects to a native endpoint (checked by [`check_client`]). On a Unix
/// socket the listener must run as this process's user or as root
/// (`SO_PEERCRED`): records are not handed to whoever took the path.
pub(crate) fn connect(endpoint: &Endpoint, timeout: Duration) -> io::Result<Stream> {
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
                        return Ok(Stream::Tcp(s));
                    }
                    Err(e) => last = e,
                }
            }
            Err(last)
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
    fn a_client_needs_the_native_protocol_and_a_port() {
        assert_eq!(check_client(&Endpoint::unix("/tmp/a.sock")), Ok(()));
        assert_eq!(check_client(&Endpoint::tcp("[::1]:9000")), Ok(()));
        for (url, why) in [
            ("python-tcp://h:9", "native protocol"),
            ("syslog-udp://h:9", "native protocol"),
            ("tcp://h:0", "port cannot be 0"),
        ] {
            let e = check_client(&Endpoint::parse(url).unwrap())
                .unwrap_err()
                .to_string();
            assert!(e.contains(why) && e.contains(url), "{url}: {e}");
        }
    }
}
