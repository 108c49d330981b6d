//! Parsing a streamed chunk allocates nothing, escaped content included: chat chunks full of
//! `\n` and `\uXXXX` through the real `SseDecoder`, `ChunkParser` and `Probe`, with every heap
//! allocation of the test's thread counted. A test binary of its own, so allocation-counter's
//! global allocator is installed in no other.

use loadkit_core::Probe;
use loadkit_openai::ChunkParser;
use loadkit_sse::SseDecoder;

/// Contents as a Python server sends them (`json.dumps`, `ensure_ascii=True`).
const CONTENTS: [&str; 6] = [
    r"\n\n",
    r"line\nline\n",
    r"\u4f60\u597d\u4e16\u754c",
    r"\ud83d\ude00 ok\n",
    r#"caf\u00e9 \"q\" \\ \/ \t\r"#,
    "plain",
];

fn event(i: usize) -> Vec<u8> {
    format!(
        "data: {{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,\
         \"model\":\"m\",\"choices\":[{{\"index\":0,\"delta\":{{\"role\":\"assistant\",\
         \"content\":\"{}\"}},\"logprobs\":null,\"finish_reason\":null}}]}}\n\n",
        CONTENTS[i % CONTENTS.len()]
    )
    .into_bytes()
}

#[test]
fn parsing_escaped_chunks_allocates_nothing_after_warm_up() {
    let events: Vec<Vec<u8>> = (0..1_100).map(event).collect();
    // The probe keeps inter-chunk gaps by histogram bucket and allocates when a new bucket
    // appears (its documented behaviour); on the paused clock every gap is 0, one bucket, so
    // what is counted is the framing and parsing alone.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    let _clock = runtime.enter();
    let mut sse = SseDecoder::new(1 << 20);
    let mut parser = ChunkParser::default();
    let mut probe = Probe::standalone();
    let mut feed = |events: &[Vec<u8>], probe: &mut Probe| {
        for bytes in events {
            sse.push(bytes);
            while let Some(event) = sse.next_event().expect("valid framing") {
                parser.event(&event, probe).expect("valid chunk");
            }
        }
    };
    // Warm-up: the decoder's buffer and the probe's histogram get their memory.
    feed(&events[..100], &mut probe);
    let counted = allocation_counter::measure(|| feed(&events[100..], &mut probe));
    assert_eq!(probe.content_chunks(), 1_100);
    assert_eq!(counted.count_total, 0, "{counted:?}");
    // The counter is live: a Box counts.
    let boxed = allocation_counter::measure(|| drop(std::hint::black_box(Box::new(1u64))));
    assert_eq!(boxed.count_total, 1);
}
