//! Feeds arbitrary bytes to the wire decoder: as one frame, and as a stream
//! cut into pieces. Whatever decodes must re-encode to something that
//! decodes the same.
#![no_main]

use libfuzzer_sys::fuzz_target;
use logbraid::wire::{decode, Frame, FrameReader};
use logbraid::Source;

fn touch(frame: &Frame<'_>, source: &Source) {
    if let Frame::Batch(b) = frame {
        let mut n = 0;
        for r in b.records(source) {
            n += 1;
            std::hint::black_box((r.target, r.module, r.file, r.message));
            for (k, v) in r.fields {
                std::hint::black_box((k, v.to_string()));
            }
        }
        assert_eq!(n, b.len());
    }
}

fuzz_target!(|data: &[u8]| {
    let source = Source {
        host: "fuzz".into(),
        pid: 1,
        process_name: "fuzz".into(),
    };
    if let Ok(frame) = decode(data) {
        touch(&frame, &source);
        let mut again = Vec::new();
        frame.encode(&mut again).unwrap();
        assert_eq!(decode(&again).unwrap(), frame);
    }
    // The first byte chooses the piece size and the frame limit.
    let Some((&knob, stream)) = data.split_first() else {
        return;
    };
    let piece = usize::from(knob & 0x3f) + 1;
    let max = [64, 4096, 1 << 20, usize::MAX][usize::from(knob >> 6)];
    let mut reader = FrameReader::new(max);
    for chunk in stream.chunks(piece) {
        reader.push(chunk);
        loop {
            match reader.next_frame() {
                Ok(Some(f)) => touch(&f, &source),
                Ok(None) => break,
                Err(_) => return,
            }
        }
    }
});
