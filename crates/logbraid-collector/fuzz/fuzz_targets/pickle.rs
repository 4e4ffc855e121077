//! Any bytes through the pickle reader, and what it decodes through the
//! LogRecord mapping.
#![no_main]

use libfuzzer_sys::fuzz_target;
use logbraid_collector::intake::pickle::{decode, Limits};
use logbraid_collector::intake::python::record_from_dict;
use logbraid_collector::intake::SourceCache;

fuzz_target!(|data: &[u8]| {
    let limits = Limits {
        max_elements: 100_000,
        max_total_bytes: 1 << 20,
        ..Limits::default()
    };
    if let Ok(value) = decode(data, &limits) {
        let mut repr = String::new();
        value.write_repr(&mut repr, 4096);
        assert!(repr.len() <= 4096 + 3);
        if let Ok(record) = record_from_dict(&value, "peer", 0, &mut SourceCache::new()) {
            assert!(record.fields.as_fields().validate().is_some());
        }
    }
});
