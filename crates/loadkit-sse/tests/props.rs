//! Property tests of the SSE and NDJSON framing (short: 256 cases each; `fuzz/` runs longer):
//! any split of a valid stream into chunks yields the same events as the whole stream pushed at
//! once (and the events the stream was written from), and arbitrary bytes pushed in arbitrary
//! chunks never panic and never grow the buffer past the event limit.

use loadkit_sse::{NdjsonDecoder, SseDecoder};
use proptest::prelude::*;
use proptest::sample::Index;

const MAX: usize = 4096;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// `bytes` cut at `cuts` (positions taken modulo its length).
fn split<'a>(bytes: &'a [u8], cuts: &[Index]) -> Vec<&'a [u8]> {
    let mut at: Vec<usize> = cuts.iter().map(|i| i.index(bytes.len() + 1)).collect();
    at.push(0);
    at.push(bytes.len());
    at.sort_unstable();
    at.windows(2).map(|w| &bytes[w[0]..w[1]]).collect()
}

type Event = (Option<Vec<u8>>, Vec<u8>);

/// Every event the decoder gives for `chunks`, then its error if it failed.
fn sse(chunks: &[&[u8]]) -> (Vec<Event>, Option<String>) {
    let mut decoder = SseDecoder::new(MAX);
    let mut events = Vec::new();
    for chunk in chunks {
        decoder.push(chunk);
        loop {
            match decoder.next_event() {
                Ok(Some(e)) => events.push((e.event.map(<[u8]>::to_vec), e.data.to_vec())),
                Ok(None) => break,
                Err(e) => return (events, Some(e.to_string())),
            }
        }
        assert!(decoder.buffered() <= MAX + chunk.len());
    }
    if let Some(e) = decoder.finish() {
        events.push((e.event.map(<[u8]>::to_vec), e.data.to_vec()));
    }
    (events, None)
}

fn ndjson(chunks: &[&[u8]]) -> (Vec<Vec<u8>>, Option<String>) {
    let mut decoder = NdjsonDecoder::new(MAX);
    let mut lines = Vec::new();
    for chunk in chunks {
        decoder.push(chunk);
        loop {
            match decoder.next_line() {
                Ok(Some(line)) => lines.push(line.to_vec()),
                Ok(None) => break,
                Err(e) => return (lines, Some(e.to_string())),
            }
        }
    }
    if let Some(line) = decoder.finish() {
        lines.push(line.to_vec());
    }
    (lines, None)
}

/// A valid stream: events of one or more `data:` lines (some with an `event:` name, an `id:`
/// or a comment before them), every line ended by `eol`.
fn stream() -> impl Strategy<Value = (Vec<u8>, Vec<Event>)> {
    let event = (
        prop::option::of("[a-z]{1,8}"),
        prop::collection::vec("[a-zA-Z0-9 {}\":,\\[\\]]{0,24}", 1..4),
        any::<bool>(),
        any::<bool>(),
    );
    (
        prop::collection::vec(event, 0..12),
        prop::sample::select(vec!["\n", "\r\n", "\r"]),
    )
        .prop_map(|(events, eol)| {
            let mut text = String::new();
            let mut expected = Vec::new();
            for (name, lines, comment, id) in events {
                if comment {
                    text.push_str(&format!(": keepalive{eol}"));
                }
                if let Some(name) = &name {
                    text.push_str(&format!("event: {name}{eol}"));
                }
                if id {
                    text.push_str(&format!("id: 7{eol}"));
                }
                for line in &lines {
                    text.push_str(&format!("data: {line}{eol}"));
                }
                text.push_str(eol);
                // `data: X` loses the one space after the colon.
                expected.push((name.map(String::into_bytes), lines.join("\n").into_bytes()));
            }
            (text.into_bytes(), expected)
        })
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn any_split_of_an_sse_stream_yields_the_same_events(
        (bytes, expected) in stream(),
        cuts in prop::collection::vec(any::<Index>(), 0..16),
    ) {
        let whole = sse(&[&bytes]);
        prop_assert_eq!(&whole, &(expected, None));
        prop_assert_eq!(sse(&split(&bytes, &cuts)), whole);
    }

    #[test]
    fn arbitrary_bytes_in_arbitrary_chunks_never_panic_the_sse_decoder(
        bytes in prop::collection::vec(any::<u8>(), 0..2048),
        cuts in prop::collection::vec(any::<Index>(), 0..16),
    ) {
        let _ = sse(&split(&bytes, &cuts));
    }

    #[test]
    fn any_split_of_an_ndjson_stream_yields_the_same_lines(
        lines in prop::collection::vec("[a-zA-Z0-9 {}\":,]{1,40}", 0..16),
        crlf in any::<bool>(),
        cuts in prop::collection::vec(any::<Index>(), 0..16),
    ) {
        let eol = if crlf { "\r\n" } else { "\n" };
        let bytes: Vec<u8> = lines.iter().flat_map(|l| format!("{l}{eol}").into_bytes()).collect();
        let whole = ndjson(&[&bytes]);
        prop_assert_eq!(ndjson(&split(&bytes, &cuts)), whole);
    }

    #[test]
    fn arbitrary_bytes_in_arbitrary_chunks_never_panic_the_ndjson_decoder(
        bytes in prop::collection::vec(any::<u8>(), 0..2048),
        cuts in prop::collection::vec(any::<Index>(), 0..16),
    ) {
        let _ = ndjson(&split(&bytes, &cuts));
    }
}
