//! Any bytes as one syslog message, and as a TCP stream cut at
//! fuzzer-chosen points.
#![no_main]

use libfuzzer_sys::fuzz_target;
use logbraid_collector::intake::python::KEEP_BUFFER;
use logbraid_collector::intake::syslog::{parse_with, SyslogTcpDecoder};
use logbraid_collector::intake::SourceCache;

fuzz_target!(|data: &[u8]| {
    let Some((&step, rest)) = data.split_first() else {
        return;
    };
    let received = i64::from(step) * 86_400_000_000_000 * 61;
    let mut sources = SourceCache::new();
    if let Ok(record) = parse_with(rest, received, "peer", &mut sources) {
        assert!(record.fields.as_fields().validate().is_some());
        assert!(record.message.len() <= rest.len());
    }
    let mut decoder = SyslogTcpDecoder::new(512);
    for chunk in rest.chunks(usize::from(step) + 1) {
        decoder.push(chunk);
        while let Ok(Some(frame)) = decoder.next_frame() {
            assert!(frame.len() <= 512);
            let _ = parse_with(frame, received, "peer", &mut sources);
        }
        decoder.shrink();
        let (len, capacity) = decoder.buffer();
        assert!(capacity <= KEEP_BUFFER.max(len));
        assert!(sources.bytes() <= SourceCache::DEFAULT_CAPACITY);
    }
    if let Ok(Some(frame)) = decoder.finish() {
        let _ = parse_with(frame, received, "peer", &mut sources);
    }
});
