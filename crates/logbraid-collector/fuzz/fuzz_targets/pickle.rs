//! Any bytes through the pickle reader, and what it decodes through the
//! LogRecord mapping; the intake's own reading of a LogRecord pickle
//! (plain when it can be) gives what the general reading and mapping do.
#![no_main]

use libfuzzer_sys::fuzz_target;
use logbraid_collector::intake::pickle::{Decoder, Limits};
use logbraid_collector::intake::python::{record_from_dict, record_from_pickle, PythonIntake};
use logbraid_collector::intake::SourceCache;

fuzz_target!(|data: &[u8]| {
    let limits = Limits {
        max_elements: 100_000,
        max_total_bytes: 1 << 20,
        max_work_bytes: 1 << 20,
        ..Limits::default()
    };
    let mut decoder = Decoder::new(limits.clone());
    let decoded = decoder.decode(data);
    if let Ok(value) = decoded {
        let mut repr = String::new();
        value.write_repr(&mut repr, 4096);
        assert!(repr.len() <= 4096 + 3);
        if let Ok(record) = record_from_dict(&value, "peer", 0, &mut SourceCache::new()) {
            assert!(record.fields.as_fields().validate().is_some());
        }
    }
    assert!(decoder.retained_bytes() <= Decoder::KEEP_BYTES);
    let general = record_from_pickle(data, "peer", 0, &limits, &mut SourceCache::new());
    let intake = PythonIntake::new(limits).decode(data, "peer", 0);
    assert_eq!(intake, general);
});
