//! Faults on the wire, counters, and stopping the server.

use std::time::Duration;

use loadkit_testbed::openai::{self, Fault, FaultRule, SimConfig};

use crate::support::post;

const STREAM: &str = r#"{"messages":[{"role":"user","content":"hi"}],"stream":true}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_hit_every_nth_request() {
    let sim = SimConfig::unpaced(6).with_fault(FaultRule::every(3, Fault::rate_limited(7)));
    let server = openai::serve(sim).await.unwrap();
    let mut statuses = Vec::new();
    for _ in 0..6 {
        let raw = post(server.addr(), "/v1/chat/completions", STREAM).await;
        if raw.status() == 429 {
            assert!(raw.head.contains("retry-after: 7"), "{}", raw.head);
        }
        statuses.push(raw.status());
    }
    assert_eq!(statuses, [200, 200, 429, 200, 200, 429]);
    assert_eq!(
        (
            server.stats().requests,
            server.stats().faults,
            server.stats().completed
        ),
        (6, 2, 4)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_faults_on_the_wire() {
    let check = |fault: Fault| async move {
        let server = openai::serve(SimConfig::unpaced(6).with_fault(FaultRule::always(fault)))
            .await
            .unwrap();
        post(server.addr(), "/v1/chat/completions", STREAM).await
    };
    let raw = check(Fault::Truncate { after_tokens: 2 }).await;
    assert_eq!(
        raw.data().len(),
        3,
        "role and 2 tokens, then a clean end: {:?}",
        raw.data()
    );
    assert!(raw.read_error.is_none());
    let raw = check(Fault::Reset { after_tokens: 2 }).await;
    assert_eq!(
        raw.read_error,
        Some(std::io::ErrorKind::ConnectionReset),
        "{raw:?}"
    );
    let raw = check(Fault::StreamError {
        after_tokens: 1,
        message: "boom".into(),
    })
    .await;
    let data = raw.data();
    assert_eq!(
        data[2],
        r#"{"error":{"message":"boom","type":"server_error","code":500}}"#
    );
    assert_eq!(data[3], "[DONE]");
    let raw = check(Fault::MalformedChunk { after_tokens: 0 }).await;
    assert!(serde_json::from_str::<serde_json::Value>(raw.data()[1]).is_err());
    let raw = check(Fault::IgnoreStream).await;
    assert!(raw.head.contains("application/json"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_is_graceful_and_drop_stops() {
    let sim = SimConfig {
        ttft: Duration::from_millis(100),
        output_tokens: 2,
        ..SimConfig::default()
    };
    let server = openai::serve(sim).await.unwrap();
    let addr = server.addr();
    let in_flight = tokio::spawn(async move { post(addr, "/v1/chat/completions", STREAM).await });
    // Wait until the request has arrived, then shut down: the stream still completes.
    while server.stats().streams == 0 {
        tokio::task::yield_now().await;
    }
    server.shutdown().await;
    let raw = in_flight.await.unwrap();
    assert_eq!(raw.data().last(), Some(&"[DONE]"));
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "no longer listening"
    );

    let server = openai::serve(SimConfig::unpaced(1)).await.unwrap();
    let addr = server.addr();
    drop(server);
    // The accept task is aborted on the runtime: let it run.
    let mut refused = false;
    for _ in 0..10_000 {
        if tokio::net::TcpStream::connect(addr).await.is_err() {
            refused = true;
            break;
        }
        tokio::task::yield_now().await;
    }
    assert!(refused, "a dropped server stops listening");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_on_a_caller_listener() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = openai::serve_on(listener, SimConfig::unpaced(2));
    assert_eq!(server.addr(), addr);
    assert_eq!(server.base_url(), format!("http://{addr}/v1"));
    assert_eq!(
        post(addr, "/v1/chat/completions", STREAM).await.status(),
        200
    );
    assert_eq!(server.stats().connections, 1);
}
