//! The `tracing` facade: a [`tracing_subscriber::Layer`] that hands events
//! to a logbraid pipeline. Event fields become record fields; the fields of
//! the spans the event is in follow them, outermost span first.
//!
//! ```no_run
//! use tracing_subscriber::prelude::*;
//! let (logger, _guard) = logbraid::Builder::new().build().unwrap();
//! tracing_subscriber::registry()
//!     .with(logbraid::bridge::tracing::layer(logger))
//!     .init();
//! tracing::info!(user = "ada", "logged in");
//! ```

use std::fmt;
use std::io::Write as _;

use tracing_core::field::{Field, Visit};
use tracing_core::span::{Attributes, Id, Record as SpanRecord};
use tracing_core::{Event, Metadata, Subscriber};
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

use crate::level::Level;
use crate::logger::{set_global, Builder, Error, Guard, Logger};
use crate::pipeline::Callsite;
use crate::record::{FieldsBuf, Value};

/// Maps a `tracing` level.
pub fn level_from_tracing(l: &tracing_core::Level) -> Level {
    match *l {
        tracing_core::Level::ERROR => Level::Error,
        tracing_core::Level::WARN => Level::Warn,
        tracing_core::Level::INFO => Level::Info,
        tracing_core::Level::DEBUG => Level::Debug,
        _ => Level::Trace,
    }
}

/// The layer; build it with [`layer`].
#[derive(Debug, Clone)]
pub struct LogbraidLayer {
    logger: Logger,
}

/// A layer writing to `logger`.
pub fn layer(logger: Logger) -> LogbraidLayer {
    LogbraidLayer { logger }
}

/// Fields recorded on a span, kept in the span's extensions.
#[derive(Debug, Default)]
struct SpanFields(FieldsBuf);

struct Visitor<'a> {
    message: Option<&'a mut Vec<u8>>,
    fields: &'a mut FieldsBuf,
}

impl Visit for Visitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        match (&mut self.message, field.name()) {
            (Some(m), "message") => m.extend_from_slice(value.as_bytes()),
            _ => self.fields.push_str(field.name(), value),
        }
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.fields.push(field.name(), Value::I64(value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.fields.push(field.name(), Value::U64(value));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.fields.push(field.name(), Value::F64(value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.fields.push(field.name(), Value::Bool(value));
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.fields.push_fmt(field.name(), format_args!("{value}"));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        match (&mut self.message, field.name()) {
            // `message` holds the format_args! of the event; its Debug is
            // its Display.
            (Some(m), "message") => {
                let _ = write!(m, "{value:?}");
            }
            _ => self
                .fields
                .push_fmt(field.name(), format_args!("{value:?}")),
        }
    }
}

impl<S> Layer<S> for LogbraidLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn enabled(&self, metadata: &Metadata<'_>, _ctx: Context<'_, S>) -> bool {
        self.logger
            .enabled(metadata.target(), level_from_tracing(metadata.level()))
    }

    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut fields = SpanFields::default();
        attrs.record(&mut Visitor {
            message: None,
            fields: &mut fields.0,
        });
        span.extensions_mut().insert(fields);
    }

    fn on_record(&self, id: &Id, values: &SpanRecord<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut ext = span.extensions_mut();
        if let Some(fields) = ext.get_mut::<SpanFields>() {
            values.record(&mut Visitor {
                message: None,
                fields: &mut fields.0,
            });
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let meta = event.metadata();
        let level = level_from_tracing(meta.level());
        if !self.logger.enabled(meta.target(), level) {
            return;
        }
        let site = Callsite {
            level,
            target: meta.target(),
            module: meta.module_path(),
            file: meta.file(),
            line: meta.line(),
            function: None,
        };
        self.logger.log_fill(&site, &mut |message, fields| {
            event.record(&mut Visitor {
                message: Some(message),
                fields,
            });
            if let Some(scope) = ctx.event_scope(event) {
                for span in scope.from_root() {
                    if let Some(f) = span.extensions().get::<SpanFields>() {
                        fields.extend_encoded(f.0.as_bytes());
                    }
                }
            }
        });
    }
}

impl Builder {
    /// Builds, and installs the logger as the global `tracing` subscriber
    /// (and, with the `log` feature, behind the `log` facade too).
    pub fn init_tracing(self) -> Result<Guard, Error> {
        use tracing_subscriber::layer::SubscriberExt;
        let (logger, guard) = self.build()?;
        let subscriber = tracing_subscriber::registry().with(layer(logger.clone()));
        tracing_core::dispatcher::set_global_default(tracing_core::Dispatch::new(subscriber))
            .map_err(|_| Error::AlreadyInstalled)?;
        #[cfg(feature = "log")]
        super::log::install(logger.clone())?;
        set_global(logger);
        Ok(guard)
    }
}
