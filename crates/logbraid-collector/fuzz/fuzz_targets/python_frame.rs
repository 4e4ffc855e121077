//! A SocketHandler stream cut at fuzzer-chosen points, and the same bytes
//! as one DatagramHandler datagram.
#![no_main]

use libfuzzer_sys::fuzz_target;
use logbraid_collector::intake::pickle::Limits;
use logbraid_collector::intake::python::{datagram, FrameDecoder, PythonIntake};

fuzz_target!(|data: &[u8]| {
    let Some((&step, stream)) = data.split_first() else {
        return;
    };
    let mut intake = PythonIntake::new(Limits::default());
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
    }
    assert!(taken <= stream.len());
    let _ = decoder.finish();
    if let Ok(pickle) = datagram(stream) {
        let _ = intake.decode(pickle, "peer", 0);
    }
});
