//! A simulated plain JSON server for non-streaming ("batch") load: any method on any path is
//! answered after a fixed latency with `{"id": N, "status": "ok", "received_bytes": B,
//! "result": {...}}`, or with a scripted error status.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response};
use hyper::body::Incoming;
use tokio::net::TcpListener;
use tokio::time::Instant;

use crate::openai::Trigger;
use crate::paced::{self, AnyBody};
use crate::server::{self, ConnHandle, Counted};

/// The simulated server's behaviour.
#[derive(Debug, Clone, PartialEq)]
pub struct JsonConfig {
    /// Time from the request's arrival to the response. Default 20 ms.
    pub latency: Duration,
    /// Size of the `result.text` field, in bytes. Default 256.
    pub result_bytes: usize,
    /// Error statuses to answer with (and the body's `detail`); the first rule that selects a
    /// request applies to it.
    pub faults: Vec<(Trigger, u16, String)>,
}

impl Default for JsonConfig {
    fn default() -> Self {
        Self {
            latency: Duration::from_millis(20),
            result_bytes: 256,
            faults: Vec::new(),
        }
    }
}

/// A running simulated JSON server.
#[derive(Debug)]
pub struct JsonServer {
    inner: Counted,
}

impl JsonServer {
    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.inner.addr()
    }

    /// `http://127.0.0.1:PORT/predict` (any path works).
    pub fn url(&self) -> String {
        format!("http://{}/predict", self.addr())
    }

    /// Requests received.
    pub fn requests(&self) -> u64 {
        self.inner.requests()
    }

    /// Stops gracefully.
    pub async fn shutdown(self) {
        self.inner.shutdown().await;
    }
}

/// Starts a simulated JSON server on `127.0.0.1:0`.
pub async fn serve(config: JsonConfig) -> std::io::Result<JsonServer> {
    let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
    Ok(serve_on(listener, config))
}

/// Starts a simulated JSON server on a listener the caller bound (inside a tokio runtime).
pub fn serve_on(listener: TcpListener, config: JsonConfig) -> JsonServer {
    JsonServer {
        inner: server::spawn_counted(listener, config, server::Transport::default(), handle),
    }
}

async fn handle(
    config: Arc<JsonConfig>,
    requests: Arc<AtomicU64>,
    request: Request<Incoming>,
    _conn: ConnHandle,
) -> Response<AnyBody> {
    let arrival = Instant::now();
    let index = requests.fetch_add(1, Ordering::Relaxed);
    let received = paced::read_body(request.into_body())
        .await
        .map_or(0, |b| b.len());
    crate::precise::sleep_until(arrival + config.latency).await;
    if let Some((_, status, detail)) = config.faults.iter().find(|(w, _, _)| w.selects(index)) {
        let body = serde_json::json!({ "detail": detail }).to_string();
        return paced::response(*status, "application/json", AnyBody::full(body));
    }
    let body = serde_json::json!({
        "id": index,
        "status": "ok",
        "received_bytes": received,
        "result": { "text": "x".repeat(config.result_bytes) },
    })
    .to_string();
    paced::response(200, "application/json", AnyBody::full(body))
}
