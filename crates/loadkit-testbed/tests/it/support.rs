//! A minimal HTTP/1.1 client over raw TCP: sends one request with `Connection: close` and reads
//! the response, de-chunking the body and timing each received piece.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

/// A response as received.
#[derive(Debug)]
pub(crate) struct Raw {
    /// Status line and headers, lowercased.
    pub(crate) head: String,
    /// The body, de-chunked if it was chunked.
    pub(crate) body: String,
    /// Each SSE event (text up to its blank line) with the time it arrived, from the send.
    pub(crate) events: Vec<(Duration, String)>,
    /// The read ended in an error (e.g. a reset) instead of a clean end.
    pub(crate) read_error: Option<std::io::ErrorKind>,
    /// Each chunk of a chunked body, as text (empty when the body was not chunked).
    pub(crate) chunks: Vec<String>,
}

impl Raw {
    /// The status code.
    pub(crate) fn status(&self) -> u16 {
        self.head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0)
    }

    /// The `data:` payloads of the events, in order.
    pub(crate) fn data(&self) -> Vec<&str> {
        self.events
            .iter()
            .filter_map(|(_, e)| e.strip_prefix("data: "))
            .collect()
    }
}

/// POSTs `body` to `path` and reads the whole response.
pub(crate) async fn post(addr: SocketAddr, path: &str, body: &str) -> Raw {
    request(addr, "POST", path, body).await
}

/// Sends one request and reads the whole response.
pub(crate) async fn request(addr: SocketAddr, method: &str, path: &str, body: &str) -> Raw {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let sent = Instant::now();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    let mut arrivals = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut read_error = None;
    loop {
        match stream.read(&mut buf).await {
            Ok(0) => break,
            Ok(n) => {
                raw.extend_from_slice(&buf[..n]);
                arrivals.push((sent.elapsed(), raw.len()));
            }
            Err(e) => {
                read_error = Some(e.kind());
                break;
            }
        }
    }
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a response head");
    let head = String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase();
    let body_start = end + 4;
    // De-chunk, remembering when each body byte arrived.
    let arrived = |offset: usize| {
        arrivals
            .iter()
            .find(|(_, len)| *len > offset)
            .map_or(Duration::MAX, |(t, _)| *t)
    };
    let mut body = Vec::new();
    let mut times = Vec::new();
    let mut chunks = Vec::new();
    if head.contains("transfer-encoding: chunked") {
        let mut at = body_start;
        while let Some(line_end) = raw[at..].windows(2).position(|w| w == b"\r\n") {
            let size = usize::from_str_radix(
                std::str::from_utf8(&raw[at..at + line_end]).unwrap().trim(),
                16,
            )
            .unwrap();
            at += line_end + 2;
            if size == 0 || at + size > raw.len() {
                break;
            }
            for i in at..at + size {
                times.push(arrived(i));
            }
            body.extend_from_slice(&raw[at..at + size]);
            chunks.push(String::from_utf8_lossy(&raw[at..at + size]).into_owned());
            at += size + 2;
        }
    } else {
        body.extend_from_slice(&raw[body_start..]);
        times.extend((body_start..raw.len()).map(arrived));
    }
    let text = String::from_utf8_lossy(&body).into_owned();
    let mut events = Vec::new();
    let mut offset = 0;
    for event in text.split_inclusive("\n\n") {
        offset += event.len();
        if event.ends_with("\n\n") {
            events.push((times[offset - 1], event.trim_end().to_owned()));
        }
    }
    Raw {
        head,
        body: text,
        events,
        read_error,
        chunks,
    }
}
