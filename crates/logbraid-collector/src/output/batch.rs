//! Decoded records packed into a few buffers: what the Python and syslog
//! listeners (streams and datagrams) hand over, in place of one
//! [`OwnedRecord`] per record with an allocation for each of its parts.
//!
//! A record's names (target, module, file, function, thread name) go to one
//! string, its message and fields to one byte buffer, back to back with
//! those of the records before it; a fixed-size slot per record says where
//! each part ends. Filling a batch allocates only when a buffer grows, and
//! the output thread frees a batch in a handful of calls, whatever the
//! number of records in it.

use std::sync::Arc;

use logbraid::{Fields, Level, OwnedRecord, Record, Source};

use crate::intake::SourceCache;

/// Records decoded from another format, packed (see the module's
/// documentation). Push with [`push`](Self::push), read back with
/// [`iter`](Self::iter): the records come back as they were pushed, in
/// order.
#[derive(Clone, Debug, Default)]
pub struct RecordBatch {
    /// Target, module, file, function and thread name of each record.
    names: String,
    /// Message, then fields, of each record.
    bytes: Vec<u8>,
    /// The records' sources: a record's source is stored again only when
    /// it is not the one of the record before it.
    sources: Vec<Arc<Source>>,
    slots: Vec<Slot>,
    /// [`weight`](Self::weight), kept as records are pushed.
    weight: usize,
}

/// Where one record's parts end in the batch's buffers (each starts where
/// the part before it ends), and its fixed-size parts.
#[derive(Clone, Copy, Debug)]
struct Slot {
    timestamp_ns: i64,
    thread_id: u64,
    /// Ends of the target, module, file, function and thread name in
    /// `names`.
    names: [usize; 5],
    /// Ends of the message and of the fields in `bytes`.
    message: usize,
    fields: usize,
    line: Option<u32>,
    /// Index in `sources`.
    source: u32,
    level: Level,
    /// Which of module, file, function and thread name the record has
    /// (bits 0 to 3): an absent one and an empty one both take no room.
    present: u8,
}

impl RecordBatch {
    /// An empty batch.
    pub fn new() -> Self {
        RecordBatch::default()
    }

    /// An empty batch with room for records like those of `other`, and a
    /// few more than it has: the next batch of a stream is likely about as
    /// long, and a buffer that must grow doubles.
    pub fn with_room_of(other: &RecordBatch) -> Self {
        let room = |len: usize| len + len / 8;
        RecordBatch {
            names: String::with_capacity(room(other.names.len())),
            bytes: Vec::with_capacity(room(other.bytes.len())),
            sources: Vec::with_capacity(other.sources.len()),
            slots: Vec::with_capacity(room(other.slots.len())),
            weight: 0,
        }
    }

    /// Records in the batch.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether no record was pushed.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// The bytes the records hold: their text, a slot each, and each
    /// source the batch keeps (by [`SourceCache::cost`]).
    pub fn weight(&self) -> usize {
        self.weight
    }

    /// Bytes allocated and not yet used: the room made for more records.
    pub fn spare(&self) -> usize {
        (self.names.capacity() - self.names.len())
            + (self.bytes.capacity() - self.bytes.len())
            + (self.sources.capacity() - self.sources.len()) * std::mem::size_of::<Arc<Source>>()
            + (self.slots.capacity() - self.slots.len()) * std::mem::size_of::<Slot>()
    }

    /// Adds a copy of `r`, from `source` (which `r.source` is, or equals).
    pub fn push(&mut self, r: &Record<'_>, source: &Arc<Source>) {
        let same = self
            .sources
            .last()
            .is_some_and(|last| Arc::ptr_eq(last, source));
        if !same {
            self.sources.push(Arc::clone(source));
            self.weight += SourceCache::cost(source);
        }
        let text_before = self.names.len() + self.bytes.len();
        let mut names = [0; 5];
        let mut present = 0;
        self.names.push_str(r.target);
        names[0] = self.names.len();
        for (i, part) in [r.module, r.file, r.function, r.thread_name]
            .into_iter()
            .enumerate()
        {
            if let Some(s) = part {
                present |= 1 << i;
                self.names.push_str(s);
            }
            names[i + 1] = self.names.len();
        }
        self.bytes.extend_from_slice(r.message);
        let message = self.bytes.len();
        self.bytes.extend_from_slice(r.fields.encoded());
        self.slots.push(Slot {
            timestamp_ns: r.timestamp_ns,
            thread_id: r.thread_id,
            names,
            message,
            fields: self.bytes.len(),
            line: r.line,
            source: (self.sources.len() - 1) as u32,
            level: r.level,
            present,
        });
        self.weight += self.names.len() + self.bytes.len() - text_before + SLOT_WEIGHT;
    }

    /// The records, in the order they were pushed.
    pub fn iter(&self) -> Iter<'_> {
        Iter {
            batch: self,
            next: 0,
            names: 0,
            bytes: 0,
        }
    }

    /// The records, each with its source, as [`OwnedRecord`]s.
    pub fn to_owned_records(&self) -> Vec<OwnedRecord> {
        self.iter()
            .zip(&self.slots)
            .map(|(r, slot)| {
                OwnedRecord::from_record_with_source(&r, &self.sources[slot.source as usize])
            })
            .collect()
    }
}

/// What a record's slot weighs in [`RecordBatch::weight`].
const SLOT_WEIGHT: usize = std::mem::size_of::<Slot>();

/// The records of a [`RecordBatch`], in order.
#[derive(Debug)]
pub struct Iter<'a> {
    batch: &'a RecordBatch,
    next: usize,
    /// Where the next record's names and bytes start.
    names: usize,
    bytes: usize,
}

impl<'a> Iterator for Iter<'a> {
    type Item = Record<'a>;

    fn next(&mut self) -> Option<Record<'a>> {
        let b = self.batch;
        let slot = b.slots.get(self.next)?;
        self.next += 1;
        // The ends were taken from the buffers as the parts were pushed,
        // whole strings each: every range is in bounds and on character
        // boundaries, so nothing here fails; `get` keeps it so.
        let mut start = self.names;
        let mut names = [""; 5];
        for (name, &end) in names.iter_mut().zip(&slot.names) {
            *name = b.names.get(start..end).unwrap_or_default();
            start = end;
        }
        self.names = start;
        let message = b.bytes.get(self.bytes..slot.message).unwrap_or_default();
        let fields = b.bytes.get(slot.message..slot.fields).unwrap_or_default();
        self.bytes = slot.fields;
        let part = |i: usize| (slot.present & (1 << i) != 0).then_some(names[i + 1]);
        Some(Record {
            timestamp_ns: slot.timestamp_ns,
            level: slot.level,
            target: names[0],
            message,
            plain_message: false,
            module: part(0),
            file: part(1),
            line: slot.line,
            function: part(2),
            thread_id: slot.thread_id,
            thread_name: part(3),
            source: &b.sources[slot.source as usize],
            fields: Fields::from_encoded(fields),
        })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.batch.slots.len() - self.next;
        (left, Some(left))
    }
}

impl ExactSizeIterator for Iter<'_> {}

#[cfg(test)]
mod tests {
    use super::*;
    use logbraid::FieldsBuf;

    fn source(pid: u32) -> Arc<Source> {
        Arc::new(Source {
            host: "host".into(),
            pid,
            process_name: "prog".into(),
        })
    }

    #[test]
    fn records_come_back_exactly_in_order() {
        let (a, b) = (source(1), source(2));
        let mut fields = FieldsBuf::new();
        fields.push_str("user", "ada");
        let full = Record::new(Level::Warn, "app.db", b"two\nlines \xff", &a)
            .with_timestamp(-5)
            .with_module("db")
            .with_file("/srv/db.py")
            .with_line(0)
            .with_function("")
            .with_thread_id(u64::MAX)
            .with_thread_name("Thread-1")
            .with_fields(fields.as_fields());
        let bare = Record::new(Level::Info, "", b"", &b);
        let partial = Record::new(Level::Critical, "x", b"m", &a).with_file("f.py");
        let mut batch = RecordBatch::new();
        for (r, s) in [(&full, &a), (&bare, &b), (&bare, &b), (&partial, &a)] {
            batch.push(r, s);
        }
        assert_eq!(batch.len(), 4);
        // A source is kept again only where it changes.
        assert_eq!(batch.sources.len(), 3);
        let want: Vec<OwnedRecord> = [(&full, &a), (&bare, &b), (&bare, &b), (&partial, &a)]
            .iter()
            .map(|(r, s)| OwnedRecord::from_record_with_source(r, s))
            .collect();
        assert_eq!(batch.to_owned_records(), want);
        let back: Vec<OwnedRecord> = batch.iter().map(|r| OwnedRecord::from_record(&r)).collect();
        assert_eq!(back, want);
        assert_eq!(batch.iter().len(), 4);
        assert_eq!(batch.iter().nth(3).unwrap().file, Some("f.py"));
        // An absent part and an empty one stay apart.
        let first = batch.iter().next().unwrap();
        assert_eq!((first.function, first.line), (Some(""), Some(0)));
        let second = batch.iter().nth(1).unwrap();
        assert_eq!((second.function, second.line), (None, None));
    }

    #[test]
    fn the_weight_counts_text_slots_and_sources() {
        let a = source(1);
        let mut batch = RecordBatch::new();
        assert_eq!(batch.weight(), 0);
        let r = Record::new(Level::Info, "target", b"message", &a).with_thread_name("t");
        batch.push(&r, &a);
        let one = "target".len() + "message".len() + 1 + SLOT_WEIGHT;
        assert_eq!(batch.weight(), one + SourceCache::cost(&a));
        batch.push(&r, &a);
        assert_eq!(batch.weight(), 2 * one + SourceCache::cost(&a));
        let next = RecordBatch::with_room_of(&batch);
        assert!(next.is_empty());
        assert!(next.spare() >= batch.weight() - SourceCache::cost(&a));
    }
}
