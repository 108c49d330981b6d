//! The scraper against a live `/metrics` endpoint on 127.0.0.1: points at each interval, counters
//! turned into rates, failures recorded and never fatal.

use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use loadkit_scrape::{Config, Kind, Scraper, Series};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

/// Serves a vLLM-like body whose counter rises by 100 per scrape; requests from the
/// `fail_from`th on get a 500. Each request is reported on the channel.
async fn server(fail_from: u64) -> (String, mpsc::UnboundedReceiver<u64>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/metrics", listener.local_addr().unwrap());
    let (tx, rx) = mpsc::unbounded_channel();
    let hits = Arc::new(AtomicU64::new(0));
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let (tx, hits) = (tx.clone(), Arc::clone(&hits));
            tokio::spawn(async move {
                let svc = service_fn(move |_req| {
                    let n = hits.fetch_add(1, Ordering::SeqCst) + 1;
                    let _ = tx.send(n);
                    let response = if n >= fail_from {
                        hyper::Response::builder()
                            .status(500)
                            .body(Full::new(Bytes::from("down")))
                    } else {
                        let body = format!(
                            "# TYPE vllm:num_requests_running gauge\n\
                             vllm:num_requests_running{{model_name=\"m\"}} {n}\n\
                             vllm:generation_tokens_total{{model_name=\"m\"}} {}\n\
                             my_gauge{{a=\"x\"}} 7\nbroken line\n",
                            n * 100
                        );
                        hyper::Response::builder().body(Full::new(Bytes::from(body)))
                    };
                    async move { Ok::<_, Infallible>(response.unwrap()) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tcp), svc)
                    .await;
            });
        }
    });
    (url, rx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scrapes_at_each_interval_and_records_failures_without_stopping() {
    let (url, mut hits) = server(4).await;
    let scraper = Scraper::start(Config {
        url: url.clone(),
        every: Duration::from_millis(20),
        kind: None,
        extra: vec![Series::user(
            "my_gauge",
            "my_gauge{a=\"x\"}".parse().unwrap(),
        )],
    })
    .unwrap();
    // Three good scrapes, then failures: the scraper goes on through them.
    while hits.recv().await.unwrap() < 6 {}
    let log = tokio::task::spawn_blocking(move || scraper.finish())
        .await
        .unwrap();
    assert_eq!(log.kind, Kind::Vllm);
    assert_eq!(log.url, url);
    assert_eq!(log.points.len(), 3, "{:?}", log.points);
    // The sixth was sent after the fifth was answered; it may be abandoned at the stop.
    assert!(log.scrapes >= 5 && log.failures >= 2, "{log:?}");
    assert_eq!(log.failures, log.scrapes - 3);
    assert_eq!(log.first_error.as_deref(), Some("HTTP status 500"));
    assert_eq!(log.rejected_lines, 3, "one broken line per good scrape");
    assert_eq!(
        log.first_rejected.as_deref(),
        Some("line 5: broken: bad value \"line\"")
    );
    let keys: Vec<&str> = log.series.iter().map(|s| s.key.as_str()).collect();
    let at = |k: &str| keys.iter().position(|x| *x == k).unwrap();
    let (running, tokens, mine) = (
        at("vllm:num_requests_running"),
        at("vllm:generation_tokens_total"),
        at("my_gauge"),
    );
    let values: Vec<Option<f64>> = log.points.iter().map(|p| p.values[running]).collect();
    assert_eq!(values, vec![Some(1.0), Some(2.0), Some(3.0)]);
    assert_eq!(
        log.points[0].values[tokens], None,
        "a rate needs two scrapes"
    );
    for pair in log.points.windows(2) {
        let dt = (pair[1].at - pair[0].at).as_secs_f64();
        let rate = pair[1].values[tokens].unwrap();
        assert!(
            (rate * dt - 100.0).abs() < 1e-6,
            "100 tokens over {dt} s: {rate}"
        );
    }
    assert!(log.points.iter().all(|p| p.values[mine] == Some(7.0)));
    assert!(log.missing().contains(&"vllm:request_queue_time_seconds"));
}

#[tokio::test]
async fn an_endpoint_that_is_not_there_is_a_recorded_failure() {
    // A port that was bound and released: nothing listens there.
    let addr = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let fetcher =
        loadkit_scrape::Fetcher::new(&format!("http://{addr}/metrics"), Duration::from_secs(2))
            .unwrap();
    let err = fetcher.fetch().await.unwrap_err();
    assert!(err.to_string().starts_with("connect: "), "{err}");
    let bad =
        loadkit_scrape::Fetcher::new("https://example.invalid/metrics", Duration::from_secs(1));
    assert_eq!(
        bad.unwrap_err().to_string(),
        "not an http:// URL: https://example.invalid/metrics"
    );
}
