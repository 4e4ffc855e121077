//! logbraid: lossless, rotated, non-blocking logging.
#![warn(missing_docs, unreachable_pub, missing_debug_implementations)]

pub mod bridge;
pub mod clock;
pub mod collect;
pub mod config;
pub mod endpoint;
// For the fault-injection tests: failpoints with the `failpoints` feature,
// empty functions without.
#[doc(hidden)]
pub mod fault;
pub mod filter;
pub mod forward;
pub mod layout;
pub mod level;
mod logger;
pub mod macros;
pub mod options;
pub mod pipeline;
pub mod read;
pub mod record;
pub mod report;
pub mod sink;
mod sys;
pub mod time;
#[cfg(feature = "tls")]
pub mod tls;
pub mod wire;

/// The date and time library logbraid's time zones and times of day come
/// from ([`sink::RollingFileBuilder::time_zone`] takes a
/// [`jiff::tz::TimeZone`]).
pub use jiff;

pub use level::{Level, LevelFilter};
pub use logger::{flush_all, global, preallocate, Builder, Error, Guard, Logger};
pub use options::{ColorChoice, Compression, Every, Naming, Overflow, SyncMode, Weekday, When};
pub use pipeline::{name_thread, set_thread_id, Callsite, LatencySummary, Mode, Stats, WaitHook};
pub use record::{set_process_name, Fields, FieldsBuf, OwnedRecord, Record, Source, Value};

/// What the logging macros expand to; not a stable interface.
#[doc(hidden)]
pub mod __private {
    pub use crate::macros::{
        add, check, enabled, enabled_in, is_plain, log, write_fmt, Arg, Decode, Decoded, EagerArg,
        FormatFn, Out, RawArg, Reader, Sel, Site, ViaEager, ViaRaw,
    };
    pub use logbraid_macros::deferred;
}
