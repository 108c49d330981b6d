//! loadkit-sse's `SseDecoder` fed arbitrary bytes in chunks whose sizes the input chooses: it
//! must never panic, never hold more than the event limit plus one chunk, and give the same
//! events (and error) however the stream is split.
#![no_main]

use libfuzzer_sys::fuzz_target;
use loadkit_sse::SseDecoder;

const MAX: usize = 1024;

type Events = (Vec<(Option<Vec<u8>>, Option<Vec<u8>>, Vec<u8>)>, Option<String>);

fn decode(chunks: &[&[u8]]) -> Events {
    let mut decoder = SseDecoder::new(MAX);
    let mut events = Vec::new();
    for chunk in chunks {
        decoder.push(chunk);
        assert!(decoder.buffered() <= MAX + 2 + chunk.len());
        loop {
            match decoder.next_event() {
                Ok(Some(e)) => events.push((
                    e.event.map(<[u8]>::to_vec),
                    e.id.map(<[u8]>::to_vec),
                    e.data.to_vec(),
                )),
                Ok(None) => break,
                Err(e) => return (events, Some(e.to_string())),
            }
        }
    }
    if let Some(e) = decoder.finish() {
        events.push((
            e.event.map(<[u8]>::to_vec),
            e.id.map(<[u8]>::to_vec),
            e.data.to_vec(),
        ));
    }
    (events, None)
}

fuzz_target!(|data: &[u8]| {
    let Some((&seed, stream)) = data.split_first() else {
        return;
    };
    let size = usize::from(seed % 17) + 1;
    let chunks: Vec<&[u8]> = stream.chunks(size).collect();
    let split = decode(&chunks);
    let whole = decode(&[stream]);
    // An error may surface at a different event when the limit is crossed mid-chunk; the
    // events before it and the error itself must agree.
    assert_eq!(split, whole);
});
