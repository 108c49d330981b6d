//! Measured TTFT, ITL, TPOT and E2E against the simulator's scripted pacing, the server's own
//! token counts from `done`, binary frames, early stopping and `min_tokens`.

use std::time::Duration;

use loadkit_testbed::harness::{errors, ms};
use loadkit_testbed::ws_chat::{self, WsChatSimConfig};

use crate::support::{config, run, PROMPT};

/// TTFT 50 ms and ITL 10 ms injected, 32 tokens: every latency comes back within its bound.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pacing_and_the_servers_token_counts() {
    let server = ws_chat::serve(WsChatSimConfig::default()).await.unwrap();
    let mut c = config(&server.url());
    c.max_tokens = 32;
    let requests = 12;
    let result = run(c, requests, 4).await;
    let s = &result.stats;
    let c = &s.counters;
    assert_eq!(
        (c.succeeded, c.failed),
        (requests, 0),
        "{:?}",
        errors(&result)
    );
    let ttft = ms(s.ttft.quantile(0.5));
    let itl = ms(s.itl.quantile(0.5));
    let tpot = ms(s.tpot.quantile(0.5));
    let e2e = ms(s.e2e.quantile(0.5));
    // Never early; a busy 2-core machine running client and server adds up to 10 ms (another
    // build or benchmark running beside the tests).
    assert!((49.5..=60.0).contains(&ttft), "ttft p50 {ttft:.3} ms");
    assert!((itl - 10.0).abs() <= 1.0, "itl p50 {itl:.3} ms");
    assert!((tpot - 10.0).abs() <= 1.0, "tpot p50 {tpot:.3} ms");
    // The end is the `done` message, right after the 32nd token (50 + 31 × 10 ms).
    assert!((359.5..=372.0).contains(&e2e), "e2e p50 {e2e:.3} ms");
    assert_eq!(s.ttft.count(), requests);
    assert_eq!(s.tpot.count(), requests);
    assert_eq!(s.itl.count(), requests * 31, "31 gaps between 32 tokens");
    assert_eq!(c.content_chunks, requests * 32);
    assert_eq!(c.output_tokens, requests * 32, "tokens_out of done");
    assert_eq!((c.tokens_from_server, c.tokens_counted), (requests, 0));
    let words = PROMPT.split_whitespace().count() as u64;
    assert_eq!(c.input_tokens, requests * words, "tokens_in of done");
    // Each token message is at least `{"type":"token","text":""}`, 26 bytes.
    assert!(c.bytes >= requests * 32 * 26, "message bytes: {}", c.bytes);
    let sim = server.stats();
    assert_eq!((sim.requests, sim.completed), (requests, requests));
    assert_eq!(sim.tokens, requests * 32);
    assert_eq!(sim.connections, 4, "one connection per user, reused");
    server.shutdown().await;
}

/// Binary frames carry the same JSON messages.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_frames_are_json_messages_too() {
    let server = ws_chat::serve(WsChatSimConfig {
        ttft: Duration::from_millis(5),
        itl: Duration::from_millis(1),
        natural_tokens: 8,
        binary: true,
        ..WsChatSimConfig::default()
    })
    .await
    .unwrap();
    let result = run(config(&server.url()), 4, 2).await;
    let c = &result.stats.counters;
    assert_eq!((c.succeeded, c.failed), (4, 0), "{:?}", errors(&result));
    assert_eq!((c.content_chunks, c.output_tokens), (32, 32));
    server.shutdown().await;
}

/// The model stops by itself after 20 tokens, below max_tokens; `min_tokens` forces the length.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn early_stop_unless_min_tokens_forces_the_length() {
    let server = ws_chat::serve(WsChatSimConfig {
        ttft: Duration::from_millis(5),
        itl: Duration::from_millis(1),
        natural_tokens: 20,
        ..WsChatSimConfig::default()
    })
    .await
    .unwrap();
    let per_request = |min_tokens: Option<u32>| {
        let mut c = config(&server.url());
        c.max_tokens = 50;
        c.min_tokens = min_tokens;
        async move {
            let result = run(c, 3, 1).await;
            let c = result.stats.counters;
            assert_eq!((c.succeeded, c.failed), (3, 0), "{:?}", errors(&result));
            assert_eq!(c.content_chunks, c.output_tokens, "every token arrived");
            c.output_tokens / 3
        }
    };
    assert_eq!(
        per_request(None).await,
        20,
        "early stop: fewer than max_tokens"
    );
    assert_eq!(per_request(Some(50)).await, 50, "min_tokens = max_tokens");
    assert_eq!(
        per_request(Some(30)).await,
        30,
        "min_tokens past the natural length"
    );
    assert_eq!(per_request(Some(80)).await, 50, "capped by max_tokens");
    server.shutdown().await;
}
