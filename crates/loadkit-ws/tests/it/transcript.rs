//! Messages captured from a real third-party server (`testdata/websockets_chat_server.py` on
//! the Python `websockets` library, `--transcript`), read by the default rules: Python's JSON
//! (`{"type": "token", ...}`, with spaces and escapes) is the default shape.

use loadkit_core::Probe;
use loadkit_ws::{MessageRules, Step, WsChatConfig};

const TRANSCRIPT: &str = include_str!("../../testdata/websockets_chat_transcript.jsonl");

/// The server's messages of each request (a request starts at each incoming message).
fn responses() -> Vec<Vec<String>> {
    let mut out: Vec<Vec<String>> = Vec::new();
    for line in TRANSCRIPT.lines() {
        let entry: serde_json::Value = serde_json::from_str(line).unwrap();
        let msg = entry["msg"].as_str().unwrap().to_owned();
        match entry["dir"].as_str() {
            Some("in") => out.push(Vec::new()),
            _ => out.last_mut().expect("a request first").push(msg),
        }
    }
    out
}

#[test]
fn the_captured_websockets_exchanges_read_as_the_server_meant() {
    let rules = MessageRules::new(&WsChatConfig::new("ws://127.0.0.1:8765/ws/chat/v2")).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let _clock = runtime.enter();
    let read = |messages: &[String]| {
        let mut probe = Probe::standalone();
        let mut steps = Vec::new();
        for m in messages {
            steps.push(rules.message(m.as_bytes(), &mut probe));
        }
        (probe.content_chunks(), steps)
    };
    let responses = responses();
    assert_eq!(responses.len(), 3);
    // max_tokens 4 under the natural 6 tokens, then 16 (the model stops at 6).
    for (messages, tokens) in responses[..2].iter().zip([4, 6]) {
        let (chunks, steps) = read(messages);
        assert_eq!(chunks, tokens);
        assert_eq!(steps.len() as u64, tokens + 1);
        assert_eq!(steps.last(), Some(&Ok(Step::End)), "{messages:?}");
        assert!(steps[..steps.len() - 1]
            .iter()
            .all(|s| s == &Ok(Step::Continue)));
    }
    let (chunks, steps) = read(&responses[2]);
    assert_eq!(chunks, 0);
    let e = steps[0].as_ref().unwrap_err();
    assert_eq!(
        (e.kind.class(), e.message.as_str()),
        ("server_error", "context length exceeded: 30 words > 20")
    );
}
