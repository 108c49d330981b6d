//! The HTTP/1.1 server plumbing every simulated server shares: the accept loop, one task per
//! connection, graceful shutdown, and a connection wrapper that can end in a TCP reset.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

/// How long [`Running::shutdown`] lets in-flight responses finish before cutting them off.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

/// A handle on one connection, given to the request handler: setting `reset` makes the
/// connection end in a TCP reset (RST) instead of an orderly close.
#[derive(Debug, Clone, Default)]
pub(crate) struct ConnHandle {
    reset: Arc<AtomicBool>,
}

impl ConnHandle {
    /// When the connection closes (e.g. because the response body failed), send an RST.
    pub(crate) fn reset_on_close(&self) {
        self.reset.store(true, Ordering::Relaxed);
    }
}

/// A running accept loop.
#[derive(Debug)]
pub(crate) struct Running {
    addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl Running {
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting, lets in-flight responses finish (up to a grace period), and waits.
    pub(crate) async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        if let Some(mut task) = self.task.take() {
            if tokio::time::timeout(SHUTDOWN_GRACE, &mut task)
                .await
                .is_err()
            {
                task.abort();
                let _ = task.await;
            }
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            // Aborting the accept task drops its JoinSet, which aborts every connection.
            task.abort();
        }
    }
}

/// Serves HTTP/1.1 on `listener`, answering each request with `handler`.
///
/// Must be called inside a tokio runtime.
pub(crate) fn spawn<H, F, B>(
    listener: TcpListener,
    handler: H,
    on_connect: impl Fn() + Send + Sync + 'static,
) -> Running
where
    H: Fn(Request<Incoming>, ConnHandle) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<B>> + Send + 'static,
    B: hyper::body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let addr = listener
        .local_addr()
        .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)));
    let (tx, rx) = watch::channel(false);
    let task = tokio::spawn(accept_loop(listener, handler, on_connect, rx));
    Running {
        addr,
        shutdown: tx,
        task: Some(task),
    }
}

/// A running simulator that counts the requests it receives: the accept loop and the counter
/// the simpler simulators (`json`, `sse_app`) share; each wraps it in its public server type.
#[derive(Debug)]
pub(crate) struct Counted {
    running: Running,
    requests: Arc<AtomicU64>,
}

impl Counted {
    /// The address it listens on.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.running.addr()
    }

    /// Requests received.
    pub(crate) fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// Stops gracefully (see [`Running::shutdown`]).
    pub(crate) async fn shutdown(self) {
        self.running.shutdown().await;
    }
}

/// Serves HTTP/1.1 on `listener`, answering each request with
/// `handler(config, requests, request, conn)`, where `requests` is the shared request counter
/// (the handler takes its own index from it).
///
/// Must be called inside a tokio runtime.
pub(crate) fn spawn_counted<C, H, F, B>(listener: TcpListener, config: C, handler: H) -> Counted
where
    C: Send + Sync + 'static,
    H: Fn(Arc<C>, Arc<AtomicU64>, Request<Incoming>, ConnHandle) -> F
        + Clone
        + Send
        + Sync
        + 'static,
    F: Future<Output = Response<B>> + Send + 'static,
    B: hyper::body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let config = Arc::new(config);
    let requests = Arc::new(AtomicU64::new(0));
    let counter = requests.clone();
    let running = spawn(
        listener,
        move |request, conn| handler(config.clone(), counter.clone(), request, conn),
        || {},
    );
    Counted { running, requests }
}

async fn accept_loop<H, F, B>(
    listener: TcpListener,
    handler: H,
    on_connect: impl Fn(),
    mut shutdown: watch::Receiver<bool>,
) where
    H: Fn(Request<Incoming>, ConnHandle) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<B>> + Send + 'static,
    B: hyper::body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let _ = stream.set_nodelay(true);
                    on_connect();
                    conns.spawn(serve_connection(stream, handler.clone(), shutdown.clone()));
                }
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::debug!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            _ = shutdown.changed() => break,
        }
    }
    drop(listener);
    while conns.join_next().await.is_some() {}
}

async fn serve_connection<H, F, B>(
    stream: TcpStream,
    handler: H,
    mut shutdown: watch::Receiver<bool>,
) where
    H: Fn(Request<Incoming>, ConnHandle) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<B>> + Send + 'static,
    B: hyper::body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let handle = ConnHandle::default();
    let io = TokioIo::new(SimIo {
        stream,
        reset: handle.reset.clone(),
    });
    let service = hyper::service::service_fn(move |request| {
        let response = handler(request, handle.clone());
        async move { Ok::<_, Infallible>(response.await) }
    });
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(None)
        .keep_alive(true)
        .serve_connection(io, service);
    tokio::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => {}
        _ = shutdown.changed() => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}

/// A TCP stream that, when dropped with its reset flag set, closes with an RST.
struct SimIo {
    stream: TcpStream,
    reset: Arc<AtomicBool>,
}

impl Drop for SimIo {
    fn drop(&mut self) {
        if self.reset.load(Ordering::Relaxed) {
            let _ = self.stream.set_zero_linger();
        }
    }
}

impl AsyncRead for SimIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for SimIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}
