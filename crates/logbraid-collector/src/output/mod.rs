//! The output stage: one thread that owns every sink of the collector and
//! writes what the listeners deliver, in arrival order (or, with a merge
//! window, in timestamp order across sources), then acknowledges.
//!
//! Listeners (tokio tasks) hand over [`Delivery`]s through an
//! [`OutputHandle`]; the handle bounds in bytes what is queued or held, so
//! a listener waits (and stops reading its socket) when the sinks fall
//! behind. After a delivery is written and flushed (and the checkpoint
//! saved), its [`AckTo`] receives the client's new highest written
//! sequence number.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use logbraid::layout::LayoutSpec;
use logbraid::wire::Dedup;
use logbraid::{Compression, Every, OwnedRecord, Source};

/// One output file, or with [`OutputConfig::route`] the settings of every
/// routed file.
#[derive(Clone, Debug)]
pub struct FileSpec {
    /// The active file (without routing).
    pub path: PathBuf,
    /// Line layout.
    pub layout: LayoutSpec,
    /// Size trigger, 0 for none.
    pub max_bytes: u64,
    /// Backups kept, 0 for all.
    pub backup_count: usize,
    /// Time trigger.
    pub every: Option<Every>,
    /// Compression of rotated files.
    pub compression: Compression,
}

/// How the output stage is set up.
#[derive(Clone, Debug)]
pub struct OutputConfig {
    /// The file, or the settings of routed files.
    pub file: FileSpec,
    /// `logs/{host}/{program}.log`: one rotated file per source. Values sent
    /// by clients are neutralised so they never name a path outside the
    /// template's directory.
    pub route: Option<String>,
    /// Hold records up to this long and write them in timestamp order
    /// across sources; `None` writes in arrival order.
    pub merge_window: Option<Duration>,
    /// Bytes of deliveries queued or held before listeners wait.
    pub max_pending_bytes: usize,
    /// Where the deduplication state and file positions are saved before
    /// each acknowledgement, for exactly-once across collector restarts;
    /// `None` saves nothing.
    pub state_path: Option<PathBuf>,
}

/// Where to report that a native batch is written.
#[derive(Debug)]
pub struct AckTo {
    /// The client id of the connection.
    pub client_id: Box<str>,
    /// The connection's epoch.
    pub epoch: u64,
    /// Sequence number of the batch's last record.
    pub last: u64,
    /// Receives the client's highest written sequence number (from
    /// [`Dedup::commit`]) once the batch is written.
    pub tx: tokio::sync::mpsc::UnboundedSender<u64>,
}

/// What a listener hands over.
#[derive(Debug)]
pub enum Body {
    /// A whole native `BATCH` frame, already validated with
    /// [`logbraid::wire::decode`]; the first `skip` records are left out.
    Native {
        /// The frame, length prefix included.
        frame: Vec<u8>,
        /// Leading records already written.
        skip: u32,
    },
    /// Records decoded from another format (Python pickles, syslog).
    Records(Vec<OwnedRecord>),
}

/// One unit of work for the output stage.
#[derive(Debug)]
pub struct Delivery {
    /// Host, pid and program the records are written under (native
    /// batches; decoded records carry their own).
    pub source: Arc<Source>,
    /// The records.
    pub body: Body,
    /// For native batches: who to acknowledge.
    pub ack: Option<AckTo>,
}

impl Delivery {
    /// The bytes this delivery counts against
    /// [`OutputConfig::max_pending_bytes`].
    pub fn weight(&self) -> usize {
        match &self.body {
            Body::Native { frame, .. } => frame.len(),
            Body::Records(rs) => rs
                .iter()
                .map(|r| 128 + r.message.len() + r.target.len() + r.fields.as_bytes().len())
                .sum(),
        }
    }
}

/// Counters of the output stage.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct OutputStats {
    /// Records written to the sinks.
    pub written: u64,
    /// Deliveries received.
    pub deliveries: u64,
    /// Bytes the sinks produced.
    pub bytes: u64,
}

/// Why the output stage could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OutputError {
    /// A sink could not be opened.
    #[error("cannot open {path}: {source}")]
    Open {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The saved state could not be read or the files not recovered.
    #[error("cannot recover from {path}: {reason}")]
    State {
        /// The state file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The route template is not valid.
    #[error("--route: {0}")]
    Route(String),
    /// The output thread could not start.
    #[error("cannot start the output thread: {0}")]
    Thread(#[source] std::io::Error),
}

/// Hands deliveries to the output thread. Cheap to clone.
#[derive(Clone, Debug)]
pub struct OutputHandle {
    _private: (),
}

impl OutputHandle {
    /// Queues a delivery, waiting while the pending bytes are at the limit.
    /// Returns `false` when the output stage has stopped.
    pub async fn send(&self, delivery: Delivery) -> bool {
        let _ = delivery;
        unimplemented!("output stage")
    }
}

/// The running output stage.
#[derive(Debug)]
pub struct Output {
    _private: (),
}

impl Output {
    /// Recovers the saved state (truncating files past their last
    /// checkpoint), opens the sinks and starts the thread. `dedup` is the
    /// table the listeners' sessions admit batches with; the output stage
    /// restores it from the state file and commits to it.
    pub fn start(
        config: OutputConfig,
        dedup: Arc<Mutex<Dedup>>,
    ) -> Result<(Output, OutputHandle), OutputError> {
        let _ = (config, dedup);
        unimplemented!("output stage")
    }

    /// Writes everything delivered so far (holding nothing back for the
    /// merge window), flushes, saves the state, sends the last acks, waits
    /// for compression and stops the thread.
    pub fn shutdown(self) -> OutputStats {
        unimplemented!("output stage")
    }

    /// The counters so far.
    pub fn stats(&self) -> OutputStats {
        unimplemented!("output stage")
    }
}
