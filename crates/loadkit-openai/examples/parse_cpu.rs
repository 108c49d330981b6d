//! The CPU cost of framing and parsing streamed OpenAI chunks, in memory (no sockets, no engine):
//! `SseDecoder` + `ChunkParser` + `Probe::standalone()`, as the client runs them per received
//! frame. CPU-only, so its figures are stable where the socket phases of `bench-stream` are not.
//!
//! Every event is pushed on its own, as a server flushing each token sends it. Three contents:
//! ASCII words, content full of `\n`, and non-ASCII text escaped as `\uXXXX` (what Python's
//! `json.dumps` sends by default, surrogate pairs for emoji); then one 1 MiB event trickled in in
//! 64-byte pushes. Run it with
//! `cargo run --release -p loadkit-openai --example parse_cpu -- [events per pass]`.

use std::time::{Duration, Instant};

use loadkit_core::Probe;
use loadkit_openai::ChunkParser;
use loadkit_sse::SseDecoder;

#[path = "common/thread_cpu.rs"]
mod thread_cpu;
use thread_cpu::thread_cpu;

/// `text` as a JSON string body the way Python's `json.dumps` writes it by default
/// (`ensure_ascii=True`): control characters and quotes escaped, everything outside ASCII as
/// `\uXXXX`, characters outside the BMP as a surrogate pair.
fn python_json_string(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_ascii_control() || !c.is_ascii() => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
            c => out.push(c),
        }
    }
    out
}

/// One SSE event carrying a chat-completion chunk with `content`, as vLLM and OpenAI frame it.
fn event(content: &str) -> Vec<u8> {
    format!(
        "data: {{\"id\":\"chatcmpl-0123456789\",\"object\":\"chat.completion.chunk\",\
         \"created\":1700000000,\"model\":\"m\",\"choices\":[{{\"index\":0,\"delta\":\
         {{\"content\":\"{}\"}},\"logprobs\":null,\"finish_reason\":null}}]}}\n\n",
        python_json_string(content)
    )
    .into_bytes()
}

/// One response: `events` events whose contents cycle through `tokens`, then `[DONE]`.
fn response(tokens: &[&str], events: usize) -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = (0..events)
        .map(|i| event(tokens[i % tokens.len()]))
        .collect();
    out.push(b"data: [DONE]\n\n".to_vec());
    out
}

/// Decodes and parses one response pushed a piece at a time; returns its content chunks.
fn run(pieces: &[impl AsRef<[u8]>]) -> u64 {
    let mut sse = SseDecoder::new(2 << 20);
    let mut parser = ChunkParser::default();
    let mut probe = Probe::standalone();
    for piece in pieces {
        sse.push(piece.as_ref());
        while let Some(event) = sse.next_event().expect("valid framing") {
            parser.event(&event, &mut probe).expect("valid chunks");
        }
    }
    assert!(parser.is_done(), "the response ends with [DONE]");
    probe.content_chunks()
}

fn main() {
    let events: usize = std::env::args()
        .nth(1)
        .map_or(100_000, |a| a.parse().expect("a number of events"));
    let ascii = [
        " the", " quick", " brown", " fox", " jumps", " over", " lazy", " dogs",
    ];
    let newlines = [
        "\n", "\n\n", "}\n", "\n    ", "a\nb\n", "\n- ", ";\n", "\n\n\n",
    ];
    let unicode = [
        "你好",
        "世界",
        "😀",
        "こんにちは",
        "é",
        "🚀 ok",
        "Привет",
        "中文",
    ];
    println!(
        "bench-stream: in-memory parse (SseDecoder + ChunkParser + Probe), one event per push \
         (a server flushing per token), one core"
    );
    for (label, tokens) in [
        ("ASCII words", &ascii),
        ("content full of \\n", &newlines),
        ("non-ASCII as \\uXXXX", &unicode),
    ] {
        let pieces = response(tokens, events);
        let (start, mut passes) = (thread_cpu(), 0u64);
        while thread_cpu() - start < Duration::from_secs(1) || passes < 2 {
            assert_eq!(run(&pieces), events as u64);
            passes += 1;
        }
        let cpu = (thread_cpu() - start).as_secs_f64();
        let rate = (passes * events as u64) as f64 / cpu;
        println!("  {label:<32}{rate:>12.0} events per CPU-second");
    }

    // One 1 MiB chunk (the 1 MiB is its SSE bytes), trickled in 64-byte pushes.
    let word = " lorem";
    let overhead = event("").len();
    let content = word.repeat(((1 << 20) - overhead) / word.len());
    let big = event(&content);
    let mut pieces: Vec<&[u8]> = big.chunks(64).collect();
    pieces.push(b"data: [DONE]\n\n");
    let (start, mut reps) = (Instant::now(), 0u32);
    while start.elapsed() < Duration::from_millis(500) || reps < 2 {
        assert_eq!(run(&pieces), 1);
        reps += 1;
    }
    let each = start.elapsed() / reps;
    println!(
        "  one {:.2} MiB event, 64-byte pushes {:>9.3} ms to decode and parse (wall, {reps} runs)",
        big.len() as f64 / f64::from(1 << 20),
        each.as_secs_f64() * 1e3
    );
}
