//! Responses captured from a real third-party Ollama-API server (`ollama-api-proxy`), replayed
//! over HTTP line by line: content, tokens and the server's own timings come out exactly.

use std::time::Duration;

use loadkit_core::schedule::FixedUsers;
use loadkit_core::{RequestCtx, RunResult, Runner};
use loadkit_ollama::{metric, OllamaClient, OllamaConfig, OllamaEndpoint, OllamaRequest};

const DIR: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../loadkit-sse/testdata/wire-samples/"
);

async fn run_sample(sample: &str, endpoint: OllamaEndpoint) -> RunResult {
    let raw = std::fs::read(format!("{DIR}{sample}")).expect("the sample file");
    let server = loadkit_testbed::replay::serve(&raw)
        .await
        .expect("a replay server");
    let mut config = OllamaConfig::new(server.base_url(), "local/smollm2");
    config.endpoint = endpoint;
    let client = OllamaClient::new(config).expect("a valid config");
    Runner::builder(client, |_: &RequestCtx| OllamaRequest::new("hi"))
        .closed_loop(FixedUsers::new(1).expect("users"))
        .requests(3)
        .timeout(Some(Duration::from_secs(10)))
        .build()
        .expect("a valid run")
        .run()
        .await
}

fn server_ms(result: &RunResult, name: &str) -> f64 {
    result.stats.named[name].quantile(0.5).as_secs_f64() * 1e3
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_chat_stream_gives_content_tokens_and_timings() {
    let r = run_sample("ollama-api-proxy_chat_stream.txt", OllamaEndpoint::Chat).await;
    let c = &r.stats.counters;
    assert_eq!(
        (c.succeeded, c.failed),
        (3, 0),
        "{:?}",
        r.stats.errors.top(3)
    );
    // "Hello", "!", " Welcome", " to", " our"; the final `done` line is not content.
    assert_eq!(c.content_chunks, 15);
    assert_eq!(
        (c.output_tokens, c.input_tokens, c.tokens_from_server),
        (15, 6, 3)
    );
    // eval_duration 167404325 ns, total_duration 167396902 ns (3 significant digits).
    assert!((server_ms(&r, metric::SERVER_EVAL) - 167.4).abs() < 0.2);
    assert!((server_ms(&r, metric::SERVER_TOTAL) - 167.4).abs() < 0.2);
    assert_eq!(r.stats.itl.count(), 12);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_generate_stream_gives_content_tokens_and_timings() {
    let r = run_sample(
        "ollama-api-proxy_generate_stream.txt",
        OllamaEndpoint::Generate,
    )
    .await;
    let c = &r.stats.counters;
    assert_eq!(
        (c.succeeded, c.failed),
        (3, 0),
        "{:?}",
        r.stats.errors.top(3)
    );
    assert_eq!(c.content_chunks, 15);
    assert_eq!((c.output_tokens, c.input_tokens), (15, 6));
    // eval_duration 131541215 ns.
    assert!((server_ms(&r, metric::SERVER_EVAL) - 131.5).abs() < 0.2);
}
