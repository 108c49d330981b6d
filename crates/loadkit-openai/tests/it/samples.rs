//! Captured responses of real servers (llama.cpp's `llama-server`, llama-cpp-python), replayed
//! over HTTP by a tiny raw-TCP server, parse as they should end to end.

use std::time::Duration;

use loadkit_openai::Endpoint;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::support::{config, errors, run};

const DIR: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../loadkit-sse/testdata/wire-samples/"
);

/// Serves `sample` (a capture as `curl -si` printed it) to every request. A streamed body is
/// re-chunked one SSE event per HTTP chunk, with a pause, the way a server flushes tokens.
async fn replay(sample: &'static str) -> String {
    let raw = std::fs::read(format!("{DIR}{sample}")).expect("the sample file");
    let at = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8(raw[..at].to_vec()).unwrap();
    let body = raw[at + 4..].to_vec();
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    let mut out_head: String = head
        .lines()
        .filter(|l| {
            let l = l.to_ascii_lowercase();
            ![
                "transfer-encoding:",
                "content-length:",
                "connection:",
                "keep-alive:",
            ]
            .iter()
            .any(|h| l.starts_with(h))
        })
        .map(|l| format!("{l}\r\n"))
        .collect();
    if chunked {
        out_head.push_str("transfer-encoding: chunked\r\n");
    } else {
        out_head.push_str(&format!("content-length: {}\r\n", body.len()));
    }
    out_head.push_str("\r\n");
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            let (head, body) = (out_head.clone(), body.clone());
            tokio::spawn(async move {
                // Read one request: its head, then its content-length body.
                let mut buf = Vec::new();
                let mut tmp = [0u8; 4096];
                loop {
                    let Ok(n) = stream.read(&mut tmp).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&tmp[..n]);
                    if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        let text = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                        let len: usize = text
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .and_then(|v| v.trim().parse().ok())
                            .unwrap_or(0);
                        if buf.len() >= end + 4 + len {
                            break;
                        }
                    }
                }
                let _ = stream.write_all(head.as_bytes()).await;
                if chunked {
                    let text = String::from_utf8(body).unwrap();
                    for event in text.split_inclusive("\n\n") {
                        let chunk = format!("{:x}\r\n{event}\r\n", event.len());
                        let _ = stream.write_all(chunk.as_bytes()).await;
                        tokio::time::sleep(Duration::from_millis(2)).await;
                    }
                    let _ = stream.write_all(b"0\r\n\r\n").await;
                } else {
                    let _ = stream.write_all(&body).await;
                }
                let _ = stream.shutdown().await;
            });
        }
    });
    format!("http://{addr}/v1")
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
