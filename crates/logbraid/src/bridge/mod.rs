//! Integration with the `log` and `tracing` facades.

#[cfg(feature = "log")]
pub mod log;

#[cfg(feature = "tracing")]
pub mod tracing;
