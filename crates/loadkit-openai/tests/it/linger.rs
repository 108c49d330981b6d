//! The end of a request is its `[DONE]`: a server that keeps the body open after it (800 ms
//! here) must not lengthen E2E or TPOT.

use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;

use crate::support::{config, harness, run};

/// Serves every connection one streamed answer: 4 content chunks 5 ms apart, `[DONE]`, then
/// 800 ms of silence before the body's last chunk.
async fn lingering_server() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                // Read the request head and its body (the client sends both at once, but may
                // split them).
                let mut request = Vec::new();
                let mut buf = [0u8; 4096];
                loop {
                    let Ok(n) = socket.read(&mut buf).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    request.extend_from_slice(&buf[..n]);
                    let text = String::from_utf8_lossy(&request).to_lowercase();
                    if let Some(head_end) = text.find("\r\n\r\n") {
                        let length = text
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .and_then(|v| v.trim().parse::<usize>().ok())
                            .unwrap_or(0);
                        if request.len() >= head_end + 4 + length {
                            break;
                        }
                    }
                }
                let chunk = |data: &str| {
                    let event = format!("data: {data}\n\n");
                    format!("{:x}\r\n{event}\r\n", event.len())
                };
                let head = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n";
                if socket.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                for i in 0..4 {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    let data =
                        format!(r#"{{"choices":[{{"index":0,"delta":{{"content":"t{i}"}}}}]}}"#);
                    let _ = socket.write_all(chunk(&data).as_bytes()).await;
                }
                let _ = socket.write_all(chunk("[DONE]").as_bytes()).await;
                tokio::time::sleep(Duration::from_millis(800)).await;
                let _ = socket.write_all(b"0\r\n\r\n").await;
            });
        }
    });
    format!("http://{addr}/v1")
}

#[tokio::test]
async fn e2e_and_tpot_end_at_done_not_when_the_body_closes() {
    let url = lingering_server().await;
    let result = run(config(&url), 4, 1).await;
    let s = &result.stats;
    assert_eq!(s.counters.succeeded, 4, "{:?}", s.errors.top(5));
    // [DONE] comes about 20 ms after the request: E2E must not include the 100 ms drain, nor
    // the 800 ms linger. The bound leaves room for a busy machine.
    let e2e = s.e2e.quantile(0.5);
    assert!(e2e < Duration::from_millis(80), "e2e p50 {e2e:?}");
    let tpot = s.tpot.quantile(0.5);
    assert!(
        tpot >= Duration::from_millis(4) && tpot < Duration::from_millis(25),
        "tpot p50 {tpot:?}"
    );
}

/// The simulator holding every body open 800 ms after `[DONE]`: E2E ends at `[DONE]`, and the
/// linger holds neither the request nor its user (the drain runs in the background).
#[tokio::test]
async fn a_lingering_body_holds_neither_the_request_nor_the_user() {
    let server = loadkit_testbed::openai::serve(loadkit_testbed::openai::SimConfig {
        ttft: Duration::from_millis(5),
        itl: Duration::from_millis(5),
        output_tokens: 4,
        transport: loadkit_testbed::Transport::lingering(harness::LINGER),
        ..Default::default()
    })
    .await
    .unwrap();
    let started = std::time::Instant::now();
    let result = run(config(&server.base_url()), 4, 1).await;
    let wall = started.elapsed();
    harness::assert_linger_is_off_the_clock(&result, 4, wall);
}
