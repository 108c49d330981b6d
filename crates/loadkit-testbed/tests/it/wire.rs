//! The simulated OpenAI server looks like a real one on the wire.

use std::time::Duration;

use loadkit_testbed::openai::{self, SimConfig};
use serde_json::Value;

use crate::support::{post, request};

const CHAT: &str = r#"{"model":"m","messages":[{"role":"user","content":"one two three"}],"stream":true,"stream_options":{"include_usage":true},"max_tokens":4}"#;

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_stream_matches_real_servers() {
    let server = openai::serve(SimConfig::unpaced(32)).await.unwrap();
    let raw = post(server.addr(), "/v1/chat/completions", CHAT).await;
    assert_eq!(raw.status(), 200);
    assert!(
        raw.head.contains("content-type: text/event-stream"),
        "{}",
        raw.head
    );
    assert!(
        raw.head.contains("transfer-encoding: chunked"),
        "{}",
        raw.head
    );
    let data = raw.data();
    // role, 4 tokens, finish, usage, [DONE]
    assert_eq!(data.len(), 8, "{data:#?}");
    let role = json(data[0]);
    assert_eq!(role["object"], "chat.completion.chunk");
    assert_eq!(
        role["choices"][0]["delta"],
        serde_json::json!({"role": "assistant", "content": null})
    );
    for token in &data[1..5] {
        let t = json(token);
        assert!(
            t["choices"][0]["delta"]["content"]
                .as_str()
                .is_some_and(|s| !s.is_empty()),
            "{token}"
        );
        assert_eq!(t["choices"][0]["finish_reason"], Value::Null);
    }
    let finish = json(data[5]);
    assert_eq!(finish["choices"][0]["delta"], serde_json::json!({}));
    assert_eq!(finish["choices"][0]["finish_reason"], "length");
    let usage = json(data[6]);
    assert_eq!(usage["choices"], serde_json::json!([]));
    assert_eq!(
        usage["usage"],
        serde_json::json!({"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7})
    );
    assert_eq!(data[7], "[DONE]");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_only_when_asked_and_enabled() {
    let body = r#"{"messages":[{"role":"user","content":"hi"}],"stream":true,"max_tokens":2}"#;
    let server = openai::serve(SimConfig::unpaced(8)).await.unwrap();
    let data = post(server.addr(), "/v1/chat/completions", body)
        .await
        .data()
        .len();
    assert_eq!(
        data, 5,
        "role, 2 tokens, finish, [DONE]: no usage without include_usage"
    );
    let quiet = openai::serve(SimConfig {
        usage: false,
        ..SimConfig::unpaced(8)
    })
    .await
    .unwrap();
    let raw = post(quiet.addr(), "/v1/chat/completions", CHAT).await;
    assert!(
        raw.data().iter().all(|d| !d.contains("usage")),
        "usage off never reports it"
    );
    let raw = post(
        quiet.addr(),
        "/v1/chat/completions",
        &CHAT.replace("true,\"stream_options\"", "false,\"x\""),
    )
    .await;
    assert!(json(&raw.body).get("usage").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completions_and_non_streaming() {
    let server = openai::serve(SimConfig::unpaced(3)).await.unwrap();
    for path in ["/v1/completions", "/completions"] {
        let raw = post(server.addr(), path, r#"{"prompt":"a b","stream":true}"#).await;
        let data = raw.data();
        assert_eq!(data.len(), 5, "3 tokens, finish, [DONE]: {data:#?}");
        assert!(json(data[0])["choices"][0]["text"].is_string());
        assert_eq!(json(data[3])["choices"][0]["finish_reason"], "stop");
    }
    let raw = post(
        server.addr(),
        "/chat/completions",
        r#"{"messages":[{"role":"user","content":"x"}]}"#,
    )
    .await;
    assert!(raw.head.contains("content-type: application/json"));
    assert!(raw.head.contains("content-length:"));
    let body = json(&raw.body);
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["choices"][0]["message"]["content"], " The quick brown");
    assert_eq!(body["usage"]["completion_tokens"], 3);
    let raw = post(
        server.addr(),
        "/v1/completions",
        r#"{"prompt":"x","max_tokens":2}"#,
    )
    .await;
    assert_eq!(json(&raw.body)["choices"][0]["text"], " The quick");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_and_other_paths() {
    let server = openai::serve(SimConfig::unpaced(3)).await.unwrap();
    let raw = post(
        server.addr(),
        "/v1/chat/completions",
        r#"{"messages":"nope"}"#,
    )
    .await;
    assert_eq!(raw.status(), 400);
    assert_eq!(
        json(&raw.body)["error"]["message"],
        "Expected 'messages' to be an array"
    );
    assert_eq!(
        post(server.addr(), "/v1/chat/completions", "{")
            .await
            .status(),
        400
    );
    assert_eq!(post(server.addr(), "/v1/nothing", "{}").await.status(), 404);
    assert_eq!(
        request(server.addr(), "GET", "/v1/chat/completions", "")
            .await
            .status(),
        405
    );
    let models = request(server.addr(), "GET", "/v1/models", "").await;
    assert_eq!(json(&models.body)["data"][0]["id"], "loadkit-sim");
    assert_eq!(
        request(server.addr(), "GET", "/health", "").await.status(),
        200
    );
    let stats = server.stats();
    assert_eq!((stats.requests, stats.rejected, stats.not_found), (2, 2, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_released_on_schedule() {
    let sim = SimConfig {
        ttft: Duration::from_millis(30),
        itl: Duration::from_millis(7),
        output_tokens: 20,
        ..SimConfig::default()
    };
    let server = openai::serve(sim).await.unwrap();
    let raw = post(
        server.addr(),
        "/v1/chat/completions",
        CHAT.replace("\"max_tokens\":4", "\"max_tokens\":20")
            .as_str(),
    )
    .await;
    let tokens: Vec<Duration> = raw
        .events
        .iter()
        .filter(|(_, e)| e.contains("\"content\":\""))
        .map(|(t, _)| *t)
        .collect();
    assert_eq!(tokens.len(), 20);
    // The role chunk goes out with the head, before the first token.
    assert!(
        raw.events[0].0 < Duration::from_millis(20),
        "{:?}",
        raw.events[0].0
    );
    // Never early; late only by scheduling noise. Release times come from the arrival instant,
    // so lateness does not accumulate: the median is small even on a loaded 2-core machine
    // (a per-token drift of 0.2 ms would already put it past 2 ms).
    let mut late = Vec::new();
    for (i, t) in tokens.iter().enumerate() {
        let due = Duration::from_millis(30 + 7 * i as u64);
        assert!(*t >= due, "token {i} at {t:?}, before {due:?}");
        assert!(
            *t < due + Duration::from_millis(15),
            "token {i} at {t:?}, due {due:?}"
        );
        late.push(*t - due);
    }
    late.sort();
    assert!(
        late[late.len() / 2] < Duration::from_millis(2),
        "lateness {late:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unpaced_streams_pack_many_events_per_chunk() {
    let server = openai::serve(SimConfig::unpaced(2_000)).await.unwrap();
    let body = r#"{"prompt":"x","stream":true,"max_tokens":2000}"#;
    let raw = post(server.addr(), "/v1/completions", body).await;
    assert_eq!(raw.data().len(), 2_002);
    assert_eq!(server.stats().tokens, 2_000);
    assert!(raw.chunks.len() < 100, "{} chunks", raw.chunks.len());
}

/// Per-token (one write each) and per-chunk (queued chunks share a writev) both frame each
/// token's event as its own HTTP chunk.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_token_and_per_chunk_flushing_write_each_token_in_its_own_chunk() {
    for flush in [
        loadkit_testbed::Flush::PerToken,
        loadkit_testbed::Flush::PerChunk,
    ] {
        let server = openai::serve(SimConfig {
            transport: loadkit_testbed::Transport {
                flush,
                ..Default::default()
            },
            ..SimConfig::unpaced(500)
        })
        .await
        .unwrap();
        let raw = post(
            server.addr(),
            "/v1/chat/completions",
            CHAT.replace("\"max_tokens\":4", "\"max_tokens\":500")
                .as_str(),
        )
        .await;
        assert_eq!(server.stats().tokens, 500);
        // The role chunk, one chunk per token, then finish, usage and [DONE] together.
        let events_per_chunk: Vec<usize> = raw
            .chunks
            .iter()
            .map(|c| c.matches("\n\n").count())
            .collect();
        assert_eq!(
            events_per_chunk.len(),
            502,
            "{flush:?}: {events_per_chunk:?}"
        );
        assert!(
            events_per_chunk[..501].iter().all(|&n| n == 1),
            "{flush:?}: {events_per_chunk:?}"
        );
        assert_eq!(events_per_chunk[501], 3);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ping_comments_fill_silences() {
    let sim = SimConfig {
        ttft: Duration::from_millis(60),
        ping: Some(Duration::from_millis(15)),
        output_tokens: 1,
        ..SimConfig::default()
    };
    let server = openai::serve(sim).await.unwrap();
    let raw = post(server.addr(), "/v1/chat/completions", CHAT).await;
    let pings = raw.events.iter().filter(|(_, e)| e == ": ping").count();
    assert!((2..=4).contains(&pings), "{pings} pings: {:#?}", raw.events);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_token_and_per_chunk_flushing_apply_to_the_paced_bodies_too() {
    use loadkit_testbed::sse_app::{self, SseAppConfig};
    for flush in [
        loadkit_testbed::Flush::PerToken,
        loadkit_testbed::Flush::PerChunk,
    ] {
        let server = sse_app::serve(SseAppConfig {
            ttft: Duration::ZERO,
            itl: Duration::ZERO,
            chunks: 300,
            transport: loadkit_testbed::Transport {
                flush,
                ..Default::default()
            },
            ..SseAppConfig::default()
        })
        .await
        .unwrap();
        let raw = post(server.addr(), "/stream", "{}").await;
        let events_per_chunk: Vec<usize> = raw
            .chunks
            .iter()
            .map(|c| c.matches("\r\n\r\n").count())
            .collect();
        // One chunk per event; the last event and the [DONE] event share the last chunk.
        assert_eq!(events_per_chunk.len(), 300, "{events_per_chunk:?}");
        assert!(events_per_chunk[..299].iter().all(|&n| n == 1));
        assert_eq!(events_per_chunk[299], 2);
    }
}
