//! A SocketHandler stream cut at fuzzer-chosen points, and the same bytes
//! as one DatagramHandler datagram.
#![no_main]

use libfuzzer_sys::fuzz_target;
use logbraid_collector::intake::pickle::{Decoder, Limits};
use logbraid_collector::intake::python::{datagram, FrameDecoder, PythonIntake, KEEP_BUFFER};
use logbraid_collector::intake::SourceCache;

fuzz_target!(|data: &[u8]| {
    let Some((&step, stream)) = data.split_first() else {
        return;
    };
    let mut intake = PythonIntake::new(Limits::default());
    intake.limit_work(usize::from(step) << 12);
    let mut decoder = FrameDecoder::new(4096);
    let mut taken = 0usize;
    for chunk in stream.chunks(usize::from(step) + 1) {
        decoder.push(chunk);
        assert!(decoder.buffered() <= stream.len());
        loop {
            match decoder.next_frame() {
                Ok(Some(frame)) => {
                    assert!(frame.len() <= 4096);
                    taken += frame.len() + 4;
                    let _ = intake.decode(&frame, "peer", 0);
                }
                Ok(None) | Err(_) => break,
            }
        }
        decoder.shrink();
        let (len, capacity) = decoder.buffer();
        assert!(capacity <= KEEP_BUFFER.max(len));
        let kept = Decoder::KEEP_BYTES + SourceCache::DEFAULT_CAPACITY;
        assert!(intake.retained_bytes() <= kept);
    }
    assert!(taken <= stream.len());
    let _ = decoder.finish();
    if let Ok(pickle) = datagram(stream) {
        let _ = intake.decode(pickle, "peer", 0);
    }
});
