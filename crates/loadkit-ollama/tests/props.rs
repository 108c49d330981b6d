//! Property tests of Ollama's NDJSON line parser (short: 256 cases each; `fuzz/` runs longer):
//! any split of a valid stream into chunks gives the same parse of every line, and arbitrary
//! bytes are a line or a classified error, never a panic.

use std::time::Duration;

use loadkit_core::Probe;
use loadkit_ollama::parse_line;
use loadkit_sse::NdjsonDecoder;
use proptest::prelude::*;
use proptest::sample::Index;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Each line's outcome: `done`, or the error's class and message.
fn parse_stream(chunks: &[&[u8]]) -> Vec<Result<bool, String>> {
    let mut decoder = NdjsonDecoder::new(1 << 16);
    let mut probe = Probe::standalone();
    let mut out = Vec::new();
    for chunk in chunks {
        decoder.push(chunk);
        while let Ok(Some(line)) = decoder.next_line() {
            out.push(
                parse_line(line, Duration::from_secs(1), &mut probe)
                    .map_err(|e| format!("{} {}", e.kind.class(), e.message)),
            );
        }
    }
    out
}

fn split<'a>(bytes: &'a [u8], cuts: &[Index]) -> Vec<&'a [u8]> {
    let mut at: Vec<usize> = cuts.iter().map(|i| i.index(bytes.len() + 1)).collect();
    at.extend([0, bytes.len()]);
    at.sort_unstable();
    at.windows(2).map(|w| &bytes[w[0]..w[1]]).collect()
}

fn line() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-zA-Z \\\\n\"]{0,12}".prop_map(|t| serde_json::json!({
            "model": "m", "message": {"role": "assistant", "content": t}, "done": false
        })
        .to_string()),
        (0u64..1000, 0u64..10_000_000).prop_map(|(n, ns)| serde_json::json!({
            "done": true, "eval_count": n, "prompt_eval_count": n,
            "load_duration": ns, "eval_duration": ns, "total_duration": ns
        })
        .to_string()),
        "[a-z ]{0,12}".prop_map(|m| serde_json::json!({"error": m}).to_string()),
        "[a-z{}\":,]{0,20}",
    ]
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn any_split_of_a_stream_parses_every_line_alike(
        lines in prop::collection::vec(line(), 0..12),
        cuts in prop::collection::vec(any::<Index>(), 0..16),
    ) {
        let bytes: Vec<u8> = lines.iter().flat_map(|l| format!("{l}\n").into_bytes()).collect();
        let whole = parse_stream(&[&bytes]);
        prop_assert_eq!(whole.len(), lines.iter().filter(|l| !l.trim().is_empty()).count());
        prop_assert_eq!(parse_stream(&split(&bytes, &cuts)), whole);
    }

    #[test]
    fn arbitrary_bytes_never_panic_the_line_parser(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = parse_line(&bytes, Duration::ZERO, &mut Probe::standalone());
    }
}
