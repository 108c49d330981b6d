//! The Ollama client end to end against `loadkit_testbed::ollama`.

use std::time::Duration;

use loadkit_core::{RequestCtx, RunResult};
use loadkit_ollama::{
    metric, HealthError, OllamaClient, OllamaConfig, OllamaEndpoint, OllamaRequest,
};
use loadkit_testbed::harness::{self, errors, ms};
use loadkit_testbed::ollama::{self, OllamaFault};
use loadkit_testbed::openai::Trigger;

const PROMPT: &str = "Say hello to the tester";

fn config(base: &str) -> OllamaConfig {
    let mut c = OllamaConfig::new(base, "loadkit-sim");
    c.http.connect_timeout = Duration::from_secs(2);
    c.http.first_byte_timeout = Duration::from_secs(5);
    c.http.idle_timeout = Duration::from_secs(5);
    c
}

async fn run(config: OllamaConfig, requests: u64, users: u32) -> RunResult {
    let client = OllamaClient::new(config).expect("a valid config");
    let make = |_: &RequestCtx| OllamaRequest::new(PROMPT);
    harness::run(client, make, requests, users).await
}

async fn check_pacing(endpoint: OllamaEndpoint) {
    let server = ollama::serve(ollama::OllamaSimConfig::default())
        .await
        .unwrap();
    let mut c = config(&server.base_url());
    c.endpoint = endpoint;
    let requests = 12;
    let result = run(c, requests, 4).await;
    let s = &result.stats;
    assert_eq!(
        (s.counters.succeeded, s.counters.failed),
        (requests, 0),
        "{:?}",
        errors(&result)
    );
    let ttft = ms(s.ttft.quantile(0.5));
    let itl = ms(s.itl.quantile(0.5));
    // Never early; a busy 2-core machine running client and server adds up to 10 ms (another build or benchmark running beside the tests).
    assert!((49.5..=60.0).contains(&ttft), "ttft p50 {ttft:.3} ms");
    assert!((itl - 10.0).abs() <= 1.0, "itl p50 {itl:.3} ms");
    assert_eq!(s.itl.count(), requests * 31);
    assert_eq!(s.counters.content_chunks, requests * 32);
    assert_eq!(s.counters.output_tokens, requests * 32, "eval_count");
    assert_eq!(s.counters.tokens_from_server, requests);
    assert_eq!(s.counters.input_tokens, requests * 5, "prompt_eval_count");
    for name in [
        metric::SERVER_LOAD,
        metric::SERVER_PROMPT_EVAL,
        metric::SERVER_EVAL,
        metric::SERVER_TOTAL,
        metric::CLIENT_OVERHEAD,
    ] {
        assert_eq!(s.named[name].count(), requests, "{name}");
    }
    let prompt_eval = ms(s.named[metric::SERVER_PROMPT_EVAL].quantile(0.5));
    assert!((prompt_eval - 50.0).abs() < 0.1, "{prompt_eval}");
    let eval = ms(s.named[metric::SERVER_EVAL].quantile(0.5));
    assert!((eval - 310.0).abs() <= 3.0, "eval {eval}");
    let overhead = ms(s.named[metric::CLIENT_OVERHEAD].quantile(0.5));
    assert!(overhead < 5.0, "client-minus-server overhead {overhead}");
    assert!(!s.named.contains_key(metric::COLD_LOAD));
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_pacing_and_server_statistics() {
    check_pacing(OllamaEndpoint::Chat).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generate_pacing_and_server_statistics() {
    check_pacing(OllamaEndpoint::Generate).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cold_loads_are_flagged_once_per_model() {
    let server = ollama::serve(ollama::OllamaSimConfig {
        cold_load: Duration::from_millis(300),
        ttft: Duration::from_millis(10),
        itl: Duration::from_millis(1),
        output_tokens: 4,
        ..Default::default()
    })
    .await
    .unwrap();
    let mut c = config(&server.base_url());
    c.cold_load_threshold = Duration::from_millis(100);
    let result = run(c, 5, 1).await;
    let s = &result.stats;
    assert_eq!(s.counters.succeeded, 5, "{:?}", errors(&result));
    assert_eq!(s.named[metric::COLD_LOAD].count(), 1);
    let load = ms(s.named[metric::COLD_LOAD].max());
    assert!((300.0..302.0).contains(&load), "{load}");
    assert!(
        ms(s.ttft.max()) >= 310.0,
        "the cold request's TTFT includes the load"
    );
    assert_eq!(server.stats().cold_loads, 1);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_streaming_answers_are_one_chunk_of_eval_count_tokens() {
    let server = ollama::serve(ollama::OllamaSimConfig {
        ttft: Duration::from_millis(5),
        itl: Duration::from_millis(1),
        ..Default::default()
    })
    .await
    .unwrap();
    let mut c = config(&server.base_url());
    c.stream = false;
    c.num_predict = Some(7);
    let result = run(c, 3, 1).await;
    let s = &result.stats;
    assert_eq!(s.counters.succeeded, 3, "{:?}", errors(&result));
    assert_eq!(s.counters.content_chunks, 3);
    assert_eq!(s.counters.output_tokens, 21, "num_predict caps eval_count");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_error_kind_is_classified() {
    let server = ollama::serve(ollama::OllamaSimConfig {
        ttft: Duration::ZERO,
        itl: Duration::ZERO,
        output_tokens: 8,
        faults: vec![
            (
                Trigger::EveryNth(4),
                OllamaFault::Status(503, "server busy".into()),
            ),
            (
                Trigger::EveryNth(3),
                OllamaFault::StreamError {
                    after_tokens: 2,
                    message: "out of memory".into(),
                },
            ),
            (
                Trigger::EveryNth(5),
                OllamaFault::Truncate { after_tokens: 3 },
            ),
            (
                Trigger::EveryNth(7),
                OllamaFault::Malformed { after_tokens: 1 },
            ),
        ],
        ..Default::default()
    })
    .await
    .unwrap();
    let result = run(config(&server.base_url()), 20, 1).await;
    let e = errors(&result);
    let count = |class: &str, message: &str| {
        e.iter()
            .find(|(c, m, _)| c == class && m == message)
            .map_or(0, |x| x.2)
    };
    // Indexes 0..20: every 4th: 3,7,11,15,19; every 3rd of the rest: 2,5,8,14,17; every 5th
    // of the rest: 4,9; every 7th: 6,13.
    assert_eq!(count("http_status", "HTTP 503: server busy"), 5, "{e:?}");
    assert_eq!(count("server_error", "out of memory"), 5, "{e:?}");
    assert_eq!(
        count("truncated", "stream ended before the done line"),
        2,
        "{e:?}"
    );
    assert_eq!(
        count("protocol", "malformed line: EOF while parsing a string"),
        2,
        "{e:?}"
    );
    let s = &result.stats.counters;
    assert_eq!(s.succeeded + s.failed, 20);

    // An unknown model: a 404 with Ollama's message, and the tags check says so up front.
    let mut c = config(&server.base_url());
    c.model = "llama9".into();
    let client = OllamaClient::new(c.clone()).unwrap();
    match client.check_model().await {
        Err(HealthError::ModelNotPulled { model, available }) => {
            assert_eq!(
                (model.as_str(), available.as_str()),
                ("llama9", "loadkit-sim:latest")
            );
        }
        other => panic!("{other:?}"),
    }
    let ok = OllamaClient::new(config(&server.base_url())).unwrap();
    assert_eq!(ok.check_model().await.unwrap(), ["loadkit-sim:latest"]);
    let result = run(c, 1, 1).await;
    assert_eq!(
        errors(&result),
        [(
            "http_status".into(),
            "HTTP 404: model \"llama9\" not found, try pulling it first".into(),
            1
        )]
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_refused_is_a_connect_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let client = OllamaClient::new(config(&format!("http://{addr}"))).unwrap();
    assert!(matches!(
        client.check_model().await,
        Err(HealthError::Request(_))
    ));
    let result = run(config(&format!("http://{addr}")), 1, 1).await;
    assert_eq!(errors(&result)[0].0, "connect");
}

/// A server that keeps each body open 800 ms after its `done: true` line: the request ends at
/// the done line, and the linger holds neither it nor its user.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lingering_body_ends_the_request_at_the_done_line() {
    let server = ollama::serve(ollama::OllamaSimConfig {
        ttft: Duration::from_millis(5),
        itl: Duration::from_millis(5),
        output_tokens: 4,
        transport: loadkit_testbed::Transport::lingering(harness::LINGER),
        ..ollama::OllamaSimConfig::default()
    })
    .await
    .unwrap();
    let started = std::time::Instant::now();
    let result = run(config(&server.base_url()), 4, 1).await;
    let wall = started.elapsed();
    harness::assert_linger_is_off_the_clock(&result, 4, wall);
}
