//! `HttpClient` driven through loadkit's engine by a minimal SSE client.

use std::time::Duration;

use bytes::Bytes;
use http::Uri;
use loadkit_core::{Client, Probe, RequestCtx, RequestError, RunResult};
use loadkit_http::{HttpClient, HttpConfig};
use loadkit_sse::SseDecoder;
use loadkit_testbed::harness::{self, errors};
use loadkit_testbed::openai::{self, Fault, FaultRule, SimConfig};

const BODY: &str = r#"{"messages":[{"role":"user","content":"hi"}],"stream":true}"#;

/// Counts every SSE data event but `[DONE]` as one content chunk.
#[derive(Debug)]
struct Fetch {
    http: HttpClient,
    uri: Uri,
    /// Read the body whole with this limit instead of streaming it.
    collect: Option<usize>,
}

impl Client for Fetch {
    type Request = ();
    type Session = ();

    async fn call(&self, _: &mut (), _: (), probe: &mut Probe) -> Result<(), RequestError> {
        let request = http::Request::post(self.uri.clone())
            .header("content-type", "application/json")
            .body(Bytes::from_static(BODY.as_bytes()))
            .expect("a valid request");
        let mut response = self.http.send(request, probe).await?;
        if !response.status.is_success() {
            let status = response.status.as_u16();
            let body = response.body.collect_prefix(1024, probe).await;
            return Err(RequestError::http_status(
                status,
                &String::from_utf8_lossy(&body),
            ));
        }
        if let Some(limit) = self.collect {
            response.body.collect(limit, probe).await?;
            probe.content(1, 0);
            return Ok(());
        }
        assert!(response.is_event_stream());
        let mut sse = SseDecoder::new(self.http.config().max_event_size);
        while let Some(bytes) = response.body.chunk(probe).await? {
            sse.push(&bytes);
            while let Some(event) = sse.next_event()? {
                if event.data != b"[DONE]" {
                    probe.content(1, event.data.len());
                }
            }
        }
        Ok(())
    }
}

async fn run(
    url: &str,
    config: HttpConfig,
    collect: Option<usize>,
    requests: u64,
    users: u32,
) -> RunResult {
    let fetch = Fetch {
        http: HttpClient::new(config).unwrap(),
        uri: url.parse().unwrap(),
        collect,
    };
    harness::run(fetch, |_: &RequestCtx| (), requests, users).await
}

fn quick() -> SimConfig {
    SimConfig {
        ttft: Duration::ZERO,
        itl: Duration::from_millis(1),
        output_tokens: 5,
        ..SimConfig::default()
    }
}

async fn server(sim: SimConfig) -> (openai::SimServer, String) {
    let server = openai::serve(sim).await.unwrap();
    let url = format!("{}/chat/completions", server.base_url());
    (server, url)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_are_read_and_connections_pooled() {
    let (server, url) = server(quick()).await;
    let result = run(&url, HttpConfig::default(), None, 12, 3).await;
    let c = &result.stats.counters;
    // role, 5 tokens and the finish chunk are data events.
    assert_eq!((c.succeeded, c.content_chunks), (12, 12 * 7));
    assert!(c.bytes > 12 * 7 * 100, "{}", c.bytes);
    // Kept-alive connections are reused: about one per user, never one per request.
    let connections = server.stats().connections;
    assert!((3..=6).contains(&connections), "{connections} connections");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deadlines() {
    let config = HttpConfig {
        first_byte_timeout: Duration::from_millis(100),
        idle_timeout: Duration::from_millis(100),
        ..HttpConfig::default()
    };
    let (_server, url) = server(quick().with_fault(FaultRule::every(
        2,
        Fault::SlowHeaders(Duration::from_millis(400)),
    )))
    .await;
    let result = run(&url, config.clone(), None, 4, 1).await;
    assert_eq!(
        errors(&result),
        [("timeout".into(), "first byte timeout after 100ms".into(), 2)]
    );
    let stall = Fault::Stall {
        after_tokens: 1,
        duration: Duration::from_millis(400),
    };
    let (_server, url) = server(quick().with_fault(FaultRule::every(2, stall))).await;
    let result = run(&url, config, None, 4, 1).await;
    assert_eq!(
        errors(&result),
        [("timeout".into(), "idle timeout after 100ms".into(), 2)]
    );
    assert_eq!(result.stats.counters.succeeded, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_but_steady_streams_do_not_hit_the_idle_timeout() {
    // 12 tokens 40 ms apart: 480 ms in all, but never 100 ms of silence.
    let sim = SimConfig {
        ttft: Duration::ZERO,
        itl: Duration::from_millis(40),
        output_tokens: 12,
        ..SimConfig::default()
    };
    let (_server, url) = server(sim).await;
    let config = HttpConfig {
        idle_timeout: Duration::from_millis(100),
        ..HttpConfig::default()
    };
    let result = run(&url, config, None, 2, 2).await;
    assert_eq!(result.stats.counters.succeeded, 2, "{:?}", errors(&result));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_connections_are_truncated() {
    let (_server, url) =
        server(quick().with_fault(FaultRule::every(2, Fault::Reset { after_tokens: 2 }))).await;
    let result = run(&url, HttpConfig::default(), None, 4, 1).await;
    assert_eq!(
        errors(&result),
        [("truncated".into(), "connection reset mid-stream".into(), 2)]
    );
    let (_server, url) =
        server(quick().with_fault(FaultRule::every(2, Fault::Close { after_tokens: 2 }))).await;
    let result = run(&url, HttpConfig::default(), None, 4, 1).await;
    assert_eq!(
        errors(&result),
        [("truncated".into(), "connection closed mid-stream".into(), 2)]
    );
    assert_eq!(
        result.stats.counters.succeeded, 2,
        "the run goes on on a new connection"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collected_bodies_are_bounded() {
    let (_server, url) = server(SimConfig::unpaced(200)).await;
    let result = run(&url, HttpConfig::default(), Some(1024), 2, 1).await;
    assert_eq!(
        errors(&result),
        [(
            "protocol".into(),
            "response body exceeds the maximum size of 1024 bytes".into(),
            2
        )]
    );
    let result = run(&url, HttpConfig::default(), Some(1 << 20), 2, 1).await;
    assert_eq!(result.stats.counters.succeeded, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_and_preflight() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let url = format!("http://{addr}/v1/chat/completions");
    let result = run(&url, HttpConfig::default(), None, 2, 1).await;
    assert_eq!(
        errors(&result),
        [("connect".into(), "connection refused".into(), 2)]
    );
    let e = loadkit_http::preflight(&url, Duration::from_secs(1))
        .await
        .unwrap_err();
    assert_eq!(
        (e.kind.class(), e.message.as_str()),
        ("connect", "connection refused")
    );
    let e = loadkit_http::preflight("not a url", Duration::from_secs(1))
        .await
        .unwrap_err();
    assert_eq!(e.kind.class(), "connect");
    let (server, _) = server(quick()).await;
    loadkit_http::preflight(&server.base_url(), Duration::from_secs(1))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_timeout_when_the_listen_queue_is_full() {
    // A listener that never accepts, with a one-slot queue: once the queue is full the kernel
    // drops further SYNs, so a connect hangs until its deadline.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(1).unwrap();
    let addr = listener.local_addr().unwrap();
    let mut fillers = Vec::new();
    for _ in 0..8 {
        match tokio::time::timeout(
            Duration::from_millis(100),
            tokio::net::TcpStream::connect(addr),
        )
        .await
        {
            Ok(Ok(stream)) => fillers.push(stream),
            _ => break,
        }
    }
    let config = HttpConfig {
        connect_timeout: Duration::from_millis(200),
        ..HttpConfig::default()
    };
    let result = run(
        &format!("http://{addr}/v1/chat/completions"),
        config,
        None,
        1,
        1,
    )
    .await;
    assert_eq!(
        errors(&result),
        [("timeout".into(), "connect timeout after 200ms".into(), 1)]
    );
    drop(listener);
}
