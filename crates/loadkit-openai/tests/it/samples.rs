//! Captured responses of real servers (llama.cpp's `llama-server`, llama-cpp-python), replayed
//! over HTTP by a tiny raw-TCP server, parse as they should end to end.

use loadkit_openai::Endpoint;

use crate::support::{config, errors, run};

const DIR: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../loadkit-sse/testdata/wire-samples/"
);

/// Serves `sample` (a capture as `curl -si` printed it) to every request, re-chunked one SSE
/// event per HTTP chunk the way a server flushes tokens (`loadkit_testbed::replay`).
async fn replay(sample: &'static str) -> String {
    let raw = std::fs::read(format!("{DIR}{sample}")).expect("the sample file");
    let server = loadkit_testbed::replay::serve(&raw)
        .await
        .expect("a replay server");
    let url = format!("{}/v1", server.base_url());
    // Kept alive for the rest of the test process.
    std::mem::forget(server);
    url
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn llama_server_chat_stream() {
    let result = run(config(&replay("llama-server_chat_stream.txt").await), 2, 1).await;
    let c = &result.stats.counters;
    assert_eq!((c.succeeded, c.content_chunks), (2, 12));
    assert_eq!(
        (c.output_tokens, c.input_tokens, c.tokens_from_server),
        (12, 66, 2)
    );
    // Role-only first chunk does not count: TTFT is at least one event pause after the head.
    assert_eq!(result.stats.itl.count(), 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn llama_server_completions_stream() {
    let mut config = config(&replay("llama-server_completions_stream.txt").await);
    config.endpoint = Endpoint::Completions;
    let result = run(config, 1, 1).await;
    let c = &result.stats.counters;
    assert_eq!(
        (
            c.succeeded,
            c.content_chunks,
            c.output_tokens,
            c.input_tokens
        ),
        (1, 5, 5, 4)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn llama_cpp_python_never_sends_usage() {
    let result = run(
        config(&replay("llama-cpp-python_chat_stream.txt").await),
        1,
        1,
    )
    .await;
    let c = &result.stats.counters;
    assert_eq!((c.succeeded, c.content_chunks), (1, 6));
    assert_eq!(
        (
            c.output_tokens,
            c.tokens_counted,
            c.tokens_from_server,
            c.input_tokens
        ),
        (6, 1, 0, 0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn llama_server_non_streaming_and_errors() {
    let mut config = config(&replay("llama-server_chat_nonstream.txt").await);
    config.stream = false;
    let result = run(config, 1, 1).await;
    let c = &result.stats.counters;
    assert_eq!(
        (
            c.succeeded,
            c.content_chunks,
            c.output_tokens,
            c.input_tokens
        ),
        (1, 1, 6, 33)
    );

    let result = run(
        crate::support::config(&replay("llama-server_error_400.txt").await),
        2,
        1,
    )
    .await;
    assert_eq!(
        errors(&result),
        [(
            "http_status".into(),
            "HTTP 400: Expected 'messages' to be an array".into(),
            2
        )]
    );
}
