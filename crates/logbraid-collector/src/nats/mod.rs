//! NATS JetStream, for collectors that publish what they receive
//! ([`crate::publish`]) and writers that consume it ([`crate::consume`]).
//!
//! A small client of its own rather than a general one: plain TCP to the
//! servers of a list, reconnection, request/reply on one inbox
//! subscription, subscriptions, and the few JetStream API calls logbraid
//! makes. (The general client that fits the minimum supported Rust
//! version pulls in a certificate verifier with open advisories; the
//! protocol logbraid needs is a few hundred lines.)
//!
//! | module | what |
//! |---|---|
//! | `proto` | the client protocol, sans I/O: parsing what servers send, encoding what clients send |
//! | `client` | one connection task: connect, reconnect, `PING`, requests, subscriptions |
//! | `jetstream` | streams, publishes with their acknowledgement, pull consumers, acks |

pub mod client;
pub mod jetstream;
pub mod proto;

pub use client::Client;

/// What went wrong talking to NATS.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NatsError {
    /// A URL that is not `nats://host:port`.
    #[error("not a NATS server URL (nats://HOST:PORT): {0:?}")]
    Url(String),
    /// A socket error.
    #[error("NATS connection: {0}")]
    Io(#[from] std::io::Error),
    /// The server broke the protocol, or answered what cannot be read.
    #[error("NATS protocol: {0}")]
    Protocol(String),
    /// The server said `-ERR`.
    #[error("NATS server: {0}")]
    Server(String),
    /// No answer in time.
    #[error("NATS: {0}")]
    Timeout(String),
    /// Nobody answers on the subject (no stream holds it, or JetStream is
    /// not available there now).
    #[error("NATS: no responders on {0} (no stream for it, or JetStream unavailable)")]
    NoResponders(String),
    /// A JetStream API error.
    #[error("JetStream: {description} (code {code}, error code {err_code})")]
    Api {
        /// The HTTP-like status.
        code: u64,
        /// JetStream's own error code.
        err_code: u64,
        /// What it says.
        description: String,
    },
    /// The connection task has ended.
    #[error("NATS connection closed")]
    Closed,
}

impl From<proto::ProtoError> for NatsError {
    fn from(e: proto::ProtoError) -> Self {
        NatsError::Protocol(e.0)
    }
}
