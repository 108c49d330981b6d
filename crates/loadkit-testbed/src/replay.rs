//! `replay`: serves a captured HTTP response (as `curl -si -N` printed it) to every request, so
//! clients can be checked end to end against what a real, third-party server actually sent.
//!
//! A streamed (chunked) body is re-sent one frame per HTTP chunk with a short pause, the way a
//! server flushes tokens: one SSE event per chunk for `text/event-stream`, one line per chunk
//! for NDJSON (`application/x-ndjson`). Other bodies go out whole with a `content-length`.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// Pause between two re-sent frames of a streamed capture.
const FRAME_PAUSE: Duration = Duration::from_millis(2);

/// A running replay server; dropping it stops it.
#[derive(Debug)]
pub struct ReplayServer {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl ReplayServer {
    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT` (no trailing slash): every path gets the same response.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for ReplayServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Why a capture cannot be replayed.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// The capture has no blank line between head and body.
    #[error("the capture has no header/body separator")]
    NoHead,
    /// Binding the listener failed.
    #[error("cannot listen: {0}")]
    Io(#[from] io::Error),
}

/// Serves `capture` (status line, headers, blank line, body) on `127.0.0.1:0`.
pub async fn serve(capture: &[u8]) -> Result<ReplayServer, ReplayError> {
    let at = capture
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or(ReplayError::NoHead)?;
    let head = String::from_utf8_lossy(&capture[..at]).into_owned();
    let body = capture[at + 4..].to_vec();
    let lower = head.to_ascii_lowercase();
    let chunked = lower.contains("transfer-encoding: chunked");
    let ndjson = lower.contains("ndjson");
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
        out_head.push_str("transfer-encoding: chunked\r\n\r\n");
    } else {
        out_head.push_str(&format!("content-length: {}\r\n\r\n", body.len()));
    }
    let frames: Vec<Vec<u8>> = if !chunked {
        vec![body]
    } else {
        let text = String::from_utf8_lossy(&body).into_owned();
        let pieces: Vec<&str> = if ndjson {
            text.split_inclusive('\n').collect()
        } else {
            text.split_inclusive("\n\n").collect()
        };
        pieces
            .into_iter()
            .map(|p| format!("{:x}\r\n{p}\r\n", p.len()).into_bytes())
            .chain(std::iter::once(b"0\r\n\r\n".to_vec()))
            .collect()
    };
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let task = tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let (head, frames) = (out_head.clone(), frames.clone());
            tokio::spawn(async move {
                // Answer every request on the connection (keep-alive), one at a time.
                let mut buf = Vec::new();
                let mut tmp = [0u8; 4096];
                loop {
                    let end = loop {
                        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            let text = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                            let len: usize = text
                                .lines()
                                .find_map(|l| l.strip_prefix("content-length:"))
                                .and_then(|v| v.trim().parse().ok())
                                .unwrap_or(0);
                            if buf.len() >= end + 4 + len {
                                break end + 4 + len;
                            }
                        }
                        match stream.read(&mut tmp).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&tmp[..n]),
                        }
                    };
                    buf.drain(..end);
                    if stream.write_all(head.as_bytes()).await.is_err() {
                        return;
                    }
                    for (i, frame) in frames.iter().enumerate() {
                        if i > 0 && chunked {
                            tokio::time::sleep(FRAME_PAUSE).await;
                        }
                        if stream.write_all(frame).await.is_err() {
                            return;
                        }
                    }
                    if !chunked && !head.to_ascii_lowercase().contains("content-length") {
                        let _ = stream.shutdown().await;
                        return;
                    }
                }
            });
        }
    });
    Ok(ReplayServer { addr, task })
}
