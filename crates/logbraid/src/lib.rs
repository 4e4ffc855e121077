//! logbraid: lossless, rotated, non-blocking logging.
#![warn(missing_docs, unreachable_pub, missing_debug_implementations)]

pub mod bridge;
pub mod clock;
pub mod config;
pub mod filter;
pub mod layout;
pub mod level;
mod logger;
pub mod options;
pub mod pipeline;
pub mod record;
pub mod sink;

pub use level::{Level, LevelFilter};
pub use logger::{flush_all, global, Builder, Error, Guard, Logger};
pub use options::{ColorChoice, Compression, Every, Naming, Overflow};
pub use pipeline::{Callsite, Mode, Stats};
pub use record::{Fields, FieldsBuf, OwnedRecord, Record, Source, Value};

/// Placeholder console until the console sink lands.
pub(crate) fn default_console() -> impl sink::Sink {
    #[derive(Debug)]
    struct Stderr(Vec<u8>);
    impl sink::Sink for Stderr {
        fn write(&mut self, r: &Record<'_>) -> std::io::Result<usize> {
            let n = self.0.len();
            self.0.extend_from_slice(r.message);
            self.0.push(b'\n');
            Ok(self.0.len() - n)
        }
        fn flush(&mut self) -> std::io::Result<()> {
            use std::io::Write;
            std::io::stderr().write_all(&self.0)?;
            self.0.clear();
            Ok(())
        }
    }
    Stderr(Vec::new())
}
