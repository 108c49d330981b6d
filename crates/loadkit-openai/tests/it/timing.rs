//! Measured TTFT, ITL and token counts against the simulated server's scripted pacing.

use std::time::Duration;

use loadkit_openai::Endpoint;
use loadkit_testbed::openai::{self, SimConfig};

use crate::support::{config, run, PROMPT};

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// TTFT 50 ms and ITL 10 ms injected: the medians come out within 2 ms and 1 ms.
async fn check_pacing(usage: bool, endpoint: Endpoint) {
    let server = openai::serve(SimConfig {
        usage,
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let mut config = config(&server.base_url());
    config.endpoint = endpoint;
    let requests = 12;
    let result = run(config, requests, 4).await;
    let c = &result.stats.counters;
    assert_eq!(
        (c.succeeded, c.failed),
        (requests, 0),
        "{:?}",
        result.stats.errors.top(5)
    );
    let ttft = ms(result.stats.ttft.quantile(0.5));
    let itl = ms(result.stats.itl.quantile(0.5));
    // Never early; a busy 2-core machine running client and server adds up to 10 ms (another build or benchmark running beside the tests).
    assert!((49.5..=60.0).contains(&ttft), "ttft p50 {ttft:.3} ms");
    assert!((itl - 10.0).abs() <= 1.0, "itl p50 {itl:.3} ms");
    assert_eq!(result.stats.ttft.count(), requests);
    assert_eq!(
        result.stats.itl.count(),
        requests * 31,
        "31 gaps between 32 tokens"
    );
    assert_eq!(c.content_chunks, requests * 32);
    assert_eq!(c.output_tokens, requests * 32);
    if usage {
        assert_eq!((c.tokens_from_server, c.tokens_counted), (requests, 0));
        assert_eq!(
            c.input_tokens,
            requests * PROMPT.split_whitespace().count() as u64
        );
    } else {
        assert_eq!((c.tokens_from_server, c.tokens_counted), (0, requests));
        assert_eq!(c.input_tokens, 0);
    }
    assert!(c.bytes > requests * 32 * 100, "framing bytes are counted");
    let stats = server.stats();
    assert_eq!(
        (stats.requests, stats.streams, stats.completed),
        (requests, requests, requests)
    );
    assert_eq!(stats.tokens, requests * 32);
    // 4 users: kept-alive connections are reused (a user may open a second one when its next
    // request starts before the pool got the previous connection back).
    assert!(
        stats.connections <= 8,
        "connections are pooled: {}",
        stats.connections
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_pacing_with_server_usage() {
    check_pacing(true, Endpoint::Chat).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_pacing_with_counted_tokens() {
    check_pacing(false, Endpoint::Chat).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completions_pacing() {
    check_pacing(true, Endpoint::Completions).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_tokens_caps_the_output() {
    let server = openai::serve(SimConfig::unpaced(64)).await.unwrap();
    let mut config = config(&server.base_url());
    config.max_tokens = Some(10);
    let result = run(config, 5, 1).await;
    let c = &result.stats.counters;
    assert_eq!(
        (c.succeeded, c.output_tokens, c.content_chunks),
        (5, 50, 50)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_streaming_responses() {
    let sim = SimConfig {
        ttft: Duration::from_millis(20),
        itl: Duration::from_millis(2),
        output_tokens: 11,
        ..SimConfig::default()
    };
    let server = openai::serve(sim).await.unwrap();
    for endpoint in [Endpoint::Chat, Endpoint::Completions] {
        let mut config = config(&server.base_url());
        config.stream = false;
        config.endpoint = endpoint;
        let result = run(config, 4, 2).await;
        let c = &result.stats.counters;
        assert_eq!(
            (
                c.succeeded,
                c.content_chunks,
                c.output_tokens,
                c.tokens_from_server
            ),
            (4, 4, 44, 4)
        );
        // The whole answer arrives at ttft + 10 * itl = 40 ms: TTFT is the full latency.
        let ttft = ms(result.stats.ttft.quantile(0.5));
        assert!(
            (40.0..42.0).contains(&ttft),
            "non-streaming ttft {ttft:.3} ms"
        );
        assert_eq!(result.stats.itl.count(), 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_endpoint_urls_and_unprefixed_paths() {
    let server = openai::serve(SimConfig::unpaced(4)).await.unwrap();
    let base = format!("http://{}", server.addr());
    for (url, endpoint) in [
        (format!("{base}/v1/chat/completions"), Endpoint::Chat),
        (format!("{base}/chat/completions"), Endpoint::Chat),
        (format!("{base}/completions"), Endpoint::Completions),
        (base.clone(), Endpoint::Completions),
    ] {
        let mut config = config(&url);
        config.endpoint = endpoint;
        let result = run(config, 2, 1).await;
        assert_eq!(result.stats.counters.succeeded, 2, "{url}");
    }
}

/// Two slots, four users at once, 100 ms of model time each: two answer after the 30 ms TTFT,
/// two wait for a slot and answer 100 ms later; `/metrics` names the queue in vLLM's words.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slots_queue_requests_in_arrival_order() {
    let server = openai::serve(SimConfig {
        ttft: Duration::from_millis(30),
        itl: Duration::from_millis(10),
        output_tokens: 8,
        slots: Some(2),
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let url = server.base_url();
    let scrape = tokio::spawn(async move {
        // Read /metrics until it shows the last two waiting (the first two hold the slots for
        // 100 ms), for at most 5 s.
        let waiting = "vllm:num_requests_waiting{model_name=\"loadkit-sim\"} 2.0";
        for _ in 0..1000 {
            let text = metrics_text(&url).await;
            if text.contains(waiting) {
                return text;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        String::from("never saw two waiting")
    });
    let result = run(config(&server.base_url()), 4, 4).await;
    let c = &result.stats.counters;
    assert_eq!((c.succeeded, c.failed), (4, 0));
    let fast = ms(result.stats.ttft.quantile(0.25));
    let slow = ms(result.stats.ttft.quantile(1.0));
    assert!(
        (29.5..=40.0).contains(&fast),
        "ttft of a free slot {fast:.1} ms"
    );
    // 100 ms of the first pair's model time (30 ms + 7 × 10 ms), then its own 30 ms.
    assert!(
        (129.5..=145.0).contains(&slow),
        "ttft after a wait {slow:.1} ms"
    );
    let busy = scrape.await.unwrap();
    assert!(
        busy.contains("vllm:num_requests_running{model_name=\"loadkit-sim\"} 2.0"),
        "{busy}"
    );
    assert!(
        busy.contains("vllm:num_requests_waiting{model_name=\"loadkit-sim\"} 2.0"),
        "{busy}"
    );
    assert!(busy.contains("vllm:gpu_cache_usage_perc{model_name=\"loadkit-sim\"} 1.0"));
    let idle = metrics_text(&server.base_url()).await;
    assert!(idle.contains("vllm:num_requests_waiting{model_name=\"loadkit-sim\"} 0.0"));
    assert!(idle.contains("vllm:generation_tokens_total{model_name=\"loadkit-sim\"} 32.0"));
}

/// The body of `GET /metrics` on the simulator's host, over a plain HTTP/1.0 exchange.
async fn metrics_text(base_url: &str) -> String {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let addr = base_url
        .trim_start_matches("http://")
        .trim_end_matches("/v1");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(b"GET /metrics HTTP/1.0\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).await.unwrap();
    text
}
