//! logbraid: lossless, rotated, non-blocking logging.
#![warn(missing_docs, unreachable_pub, missing_debug_implementations)]

pub mod clock;
pub mod config;
pub mod filter;
pub mod layout;
pub mod level;
pub mod record;
pub mod sink;

pub use level::{Level, LevelFilter};
pub use record::{Fields, FieldsBuf, OwnedRecord, Record, Source, Value};
pub mod options;

pub use options::{ColorChoice, Compression, Every, Naming, Overflow};
