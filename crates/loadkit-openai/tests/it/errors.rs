//! Every error class, produced by the simulated server's faults (or by no server at all), is
//! classified with a stable message, never panics, and does not stop the run.

use std::time::Duration;

use loadkit_openai::OpenAiConfig;
use loadkit_testbed::openai::{self, Fault, FaultRule, SimConfig};

use crate::support::{config, errors, run};

/// A quick stream: 8 tokens, 1 ms apart.
fn quick() -> SimConfig {
    SimConfig {
        ttft: Duration::ZERO,
        itl: Duration::from_millis(1),
        output_tokens: 8,
        ..SimConfig::default()
    }
}

/// Runs 6 requests one after another against a server that applies `fault` to every 2nd one,
/// and checks that exactly those 3 fail with `class` and `message` while the others succeed.
async fn check_fault(
    fault: Fault,
    tune: impl FnOnce(&mut OpenAiConfig),
    class: &str,
    message: &str,
) {
    let server = openai::serve(quick().with_fault(FaultRule::every(2, fault.clone())))
        .await
        .unwrap();
    let mut config = config(&server.base_url());
    tune(&mut config);
    let result = run(config, 6, 1).await;
    assert_eq!(
        errors(&result),
        [(class.to_owned(), message.to_owned(), 3)],
        "{fault:?}"
    );
    let c = &result.stats.counters;
    assert_eq!((c.succeeded, c.failed), (3, 3), "{fault:?}");
    let stats = server.stats();
    assert_eq!((stats.requests, stats.faults), (6, 3), "{fault:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_status_errors_carry_the_server_message() {
    check_fault(
        Fault::overloaded(),
        |_| {},
        "http_status",
        "HTTP 503: Too many concurrent requests",
    )
    .await;
    check_fault(
        Fault::rate_limited(2),
        |_| {},
        "http_status",
        "HTTP 429: Rate limit exceeded",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_streams_are_truncated() {
    check_fault(
        Fault::Truncate { after_tokens: 3 },
        |_| {},
        "truncated",
        "stream ended before [DONE]",
    )
    .await;
    check_fault(
        Fault::Reset { after_tokens: 3 },
        |_| {},
        "truncated",
        "connection reset mid-stream",
    )
    .await;
    check_fault(
        Fault::Close { after_tokens: 3 },
        |_| {},
        "truncated",
        "connection closed mid-stream",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_streams_are_protocol_errors() {
    check_fault(
        Fault::MalformedChunk { after_tokens: 2 },
        |_| {},
        "protocol",
        "malformed chunk: EOF while parsing a string",
    )
    .await;
    check_fault(
        Fault::InvalidUtf8 { after_tokens: 2 },
        |_| {},
        "protocol",
        "malformed chunk: invalid unicode code point",
    )
    .await;
    check_fault(
        Fault::Oversized {
            after_tokens: 1,
            bytes: 256 * 1024,
        },
        |c| c.http.max_event_size = 64 * 1024,
        "protocol",
        "sse event exceeds the maximum size of 65536 bytes",
    )
    .await;
    check_fault(
        Fault::IgnoreStream,
        |_| {},
        "protocol",
        "expected text/event-stream, got application/json",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_http_framing_is_a_protocol_error() {
    check_fault(
        Fault::GarbageStatus,
        |_| {},
        "protocol",
        "malformed http response head",
    )
    .await;
    check_fault(
        Fault::BadChunking { after_tokens: 2 },
        |_| {},
        "protocol",
        "malformed http body framing",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_stream_errors_are_server_errors() {
    let fault = Fault::StreamError {
        after_tokens: 2,
        message: "CUDA error: out of memory".into(),
    };
    check_fault(fault, |_| {}, "server_error", "CUDA error: out of memory").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deadlines_are_timeouts() {
    check_fault(
        Fault::SlowHeaders(Duration::from_millis(600)),
        |c| c.http.first_byte_timeout = Duration::from_millis(150),
        "timeout",
        "first byte timeout after 150ms",
    )
    .await;
    check_fault(
        Fault::Stall {
            after_tokens: 2,
            duration: Duration::from_millis(600),
        },
        |c| c.http.idle_timeout = Duration::from_millis(150),
        "timeout",
        "idle timeout after 150ms",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_limits_answer_with_statuses() {
    let server = openai::serve(SimConfig {
        max_prompt_tokens: Some(3),
        ..quick()
    })
    .await
    .unwrap();
    let result = run(config(&server.base_url()), 2, 1).await;
    assert_eq!(
        errors(&result),
        [(
            "http_status".into(),
            "HTTP 400: the prompt exceeds the context size of 3 tokens".into(),
            2
        )]
    );
    // 8 users against a server that holds at most 2 streams of 200 ms.
    let sim = SimConfig {
        ttft: Duration::from_millis(200),
        max_concurrency: Some(2),
        ..quick()
    };
    let server = openai::serve(sim).await.unwrap();
    let result = run(config(&server.base_url()), 8, 8).await;
    let c = &result.stats.counters;
    assert_eq!((c.succeeded, c.failed), (2, 6), "{:?}", errors(&result));
    assert_eq!(
        errors(&result),
        [(
            "http_status".into(),
            "HTTP 503: Too many concurrent requests".into(),
            6
        )]
    );
    assert_eq!(server.stats().rejected, 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_targets() {
    // A port nobody listens on: bind one, note it, close it.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let result = run(config(&format!("http://{addr}/v1")), 3, 1).await;
    assert_eq!(
        errors(&result),
        [("connect".into(), "connection refused".into(), 3)]
    );
    let e = loadkit_http::preflight(&format!("http://{addr}/v1"), Duration::from_secs(1))
        .await
        .unwrap_err();
    assert_eq!(e.message, "connection refused");

    // TLS spoken to a plain-HTTP server fails the handshake.
    let server = openai::serve(quick()).await.unwrap();
    let https = format!("https://{}/v1", server.addr());
    let result = run(config(&https), 2, 1).await;
    let rows = errors(&result);
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].0, "tls", "{rows:?}");
    assert!(rows[0].1.starts_with("tls handshake failed: "), "{rows:?}");
    assert!(
        !rows[0].1.contains(&server.addr().port().to_string()),
        "no per-request values: {rows:?}"
    );
    let e = loadkit_http::preflight(&https, Duration::from_secs(1))
        .await
        .unwrap_err();
    assert_eq!(e.kind.class(), "tls");
    loadkit_http::preflight(&server.base_url(), Duration::from_secs(1))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seeded_fractions_fail_the_same_requests_every_run() {
    let fault = FaultRule::fraction(0.3, 42, Fault::Truncate { after_tokens: 1 });
    let mut failed = Vec::new();
    for _ in 0..2 {
        let server = openai::serve(quick().with_fault(fault.clone()))
            .await
            .unwrap();
        let result = run(config(&server.base_url()), 20, 1).await;
        assert_eq!(result.stats.counters.failed, server.stats().faults);
        failed.push(result.stats.counters.failed);
    }
    assert_eq!(failed[0], failed[1]);
    assert!(failed[0] > 0 && failed[0] < 20, "{failed:?}");
}
