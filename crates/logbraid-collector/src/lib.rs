//! The logbraid collector: receives records from other processes and hosts
//! and writes them through the same sinks as the in-process pipeline.
#![warn(missing_docs, unreachable_pub, missing_debug_implementations)]

pub mod config;
pub mod consume;
pub mod diag;
pub mod intake;
pub mod metrics;
pub mod nats;
pub mod output;
pub mod publish;
pub mod server;
