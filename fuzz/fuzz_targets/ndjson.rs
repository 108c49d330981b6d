//! loadkit-ollama's NDJSON line parser behind loadkit-sse's `NdjsonDecoder`, fed arbitrary
//! bytes in chunks whose sizes the input chooses: never a panic, and the same lines and the
//! same parse of each however the stream is split.
#![no_main]

use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use loadkit_core::Probe;
use loadkit_sse::NdjsonDecoder;

type Lines = (Vec<Result<bool, String>>, Option<String>);

fn decode(chunks: &[&[u8]]) -> Lines {
    let mut decoder = NdjsonDecoder::new(1024);
    let mut probe = Probe::standalone();
    let mut out = Vec::new();
    for chunk in chunks {
        decoder.push(chunk);
        loop {
            match decoder.next_line() {
                Ok(Some(line)) => out.push(
                    loadkit_ollama::parse_line(line, Duration::from_millis(500), &mut probe)
                        .map_err(|e| e.message),
                ),
                Ok(None) => break,
                Err(e) => return (out, Some(e.to_string())),
            }
        }
    }
    if let Some(line) = decoder.finish() {
        out.push(
            loadkit_ollama::parse_line(line, Duration::from_millis(500), &mut probe)
                .map_err(|e| e.message),
        );
    }
    (out, None)
}

fuzz_target!(|data: &[u8]| {
    let Some((&seed, stream)) = data.split_first() else {
        return;
    };
    let size = usize::from(seed % 17) + 1;
    let chunks: Vec<&[u8]> = stream.chunks(size).collect();
    assert_eq!(decode(&chunks), decode(&[stream]));
});
