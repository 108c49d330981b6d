//! The HTTP/1.1 server plumbing every simulated server shares: the accept loop, one task per
//! connection, graceful shutdown, a connection wrapper that can end in a TCP reset or send raw
//! bytes in place of hyper's response (a broken status line or chunked framing), a pause in
//! listening (connections refused), and what a connection does with its second request
//! ([`Connections`]).

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::{JoinHandle, JoinSet};

/// How long [`Running::shutdown`] lets in-flight responses finish before cutting them off.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

/// How a simulated server treats the connections its clients keep alive.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Connections {
    /// Keep-alive: any number of requests per connection (the default).
    #[default]
    KeepAlive,
    /// One response per connection, as llama.cpp's `llama-server` behaves: the response says
    /// nothing about closing (no `Connection: close`), and a second request sent on the
    /// connection is read and answered by closing the connection. This is the race a client
    /// loses when it reuses a connection the server is about to close, lost every time.
    OneResponse,
    /// Every connection is reset (TCP RST) as soon as a request arrives on it, new or not:
    /// a server that really fails.
    ResetAll,
}

/// How the events of an unpaced stream (zero TTFT and ITL) are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Flush {
    /// Many events packed into frames of about 16 KiB, so the server is never the bottleneck
    /// (the default). A client then reads many events per read: this flatters it.
    #[default]
    Packed,
    /// Each token's event in its own body frame, written and flushed on its own (the body
    /// yields after each one, so hyper writes each in its own syscall), a strict server.
    PerToken,
    /// Each token's event in its own body frame (its own HTTP chunk), handed to hyper as soon
    /// as it is made, the body never waiting: hyper queues up to 16 chunks while the socket is
    /// busy and sends them in one `writev`, as a tokio/hyper server streaming a generator does.
    PerChunk,
}

impl Flush {
    /// Each event in its own body frame.
    pub(crate) fn frame_per_event(self) -> bool {
        matches!(self, Self::PerToken | Self::PerChunk)
    }
}

/// What a simulated server does at the transport level, whatever its protocol.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Transport {
    /// How connections kept alive are treated. Default keep-alive.
    pub connections: Connections,
    /// How long a response's body stays open after its last byte of content (its end marker),
    /// before the body ends: a server that lingers after `[DONE]`. Default zero.
    pub linger: Duration,
    /// How unpaced streams are written. Default packed.
    pub flush: Flush,
}

impl Transport {
    /// Keep-alive connections, with each body kept open `linger` after its end.
    pub fn lingering(linger: Duration) -> Self {
        Self {
            linger,
            ..Self::default()
        }
    }
}

/// The service's error when a connection is to be closed without an answer; hyper then
/// closes the connection.
#[derive(Debug)]
struct Unanswered;

impl std::fmt::Display for Unanswered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("request left unanswered: the connection closes")
    }
}

impl std::error::Error for Unanswered {}

/// Raw bytes a connection writes instead of what hyper writes next, after which it fails.
#[derive(Debug, Default)]
struct Raw {
    set: AtomicBool,
    bytes: Mutex<Option<Bytes>>,
}

/// A request to stop listening for a while, acknowledged once the listener is closed.
type Refusal = (Duration, oneshot::Sender<()>);

/// A handle on one connection, given to the request handler: setting `reset` makes the
/// connection end in a TCP reset (RST) instead of an orderly close.
#[derive(Debug, Clone)]
pub(crate) struct ConnHandle {
    reset: Arc<AtomicBool>,
    flush: Flush,
    raw: Arc<Raw>,
    refuse: mpsc::UnboundedSender<Refusal>,
}

impl ConnHandle {
    fn new(flush: Flush, refuse: mpsc::UnboundedSender<Refusal>) -> Self {
        Self {
            reset: Arc::default(),
            flush,
            raw: Arc::default(),
            refuse,
        }
    }

    /// The connection writes `bytes` in place of the response to this request, then closes
    /// (with empty `bytes`: closes without an answer).
    pub(crate) fn answer_raw(&self, bytes: Bytes) {
        if let Ok(mut slot) = self.raw.bytes.lock() {
            *slot = Some(bytes);
            self.raw.set.store(true, Ordering::Release);
        }
    }

    /// Stops the server listening for `duration` (new connections are refused), returning
    /// once the listener is closed.
    pub(crate) async fn refuse_connections(&self, duration: Duration) {
        let (ack, closed) = oneshot::channel();
        if self.refuse.send((duration, ack)).is_ok() {
            let _ = closed.await;
        }
    }

    /// When the connection closes (e.g. because the response body failed), send an RST.
    pub(crate) fn reset_on_close(&self) {
        self.reset.store(true, Ordering::Relaxed);
    }

    /// Unpaced streams on this connection put each token's event in its own body frame
    /// ([`Flush::PerToken`], [`Flush::PerChunk`]).
    pub(crate) fn frame_per_event(&self) -> bool {
        self.flush.frame_per_event()
    }

    /// Unpaced streams on this connection yield after each frame, so each is written in its
    /// own syscall ([`Flush::PerToken`]).
    pub(crate) fn write_per_event(&self) -> bool {
        self.flush == Flush::PerToken
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

/// Serves HTTP/1.1 on `listener`, answering each request with `handler`, with `transport`'s
/// connection behaviour and linger.
///
/// Must be called inside a tokio runtime.
pub(crate) fn spawn<H, F, B>(
    listener: TcpListener,
    handler: H,
    on_connect: impl Fn() + Send + Sync + 'static,
    transport: Transport,
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
    let task = tokio::spawn(accept_loop(
        listener, addr, handler, on_connect, transport, rx,
    ));
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
pub(crate) fn spawn_counted<C, H, F, B>(
    listener: TcpListener,
    config: C,
    transport: Transport,
    handler: H,
) -> Counted
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
        transport,
    );
    Counted { running, requests }
}

async fn accept_loop<H, F, B>(
    listener: TcpListener,
    addr: SocketAddr,
    handler: H,
    on_connect: impl Fn(),
    transport: Transport,
    mut shutdown: watch::Receiver<bool>,
) where
    H: Fn(Request<Incoming>, ConnHandle) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<B>> + Send + 'static,
    B: hyper::body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let mut conns = JoinSet::new();
    let (refuse_tx, mut refusals) = mpsc::unbounded_channel::<Refusal>();
    let mut listener = Some(listener);
    // While not listening: when to listen again.
    let mut paused_until = tokio::time::Instant::now();
    loop {
        let accepting = async {
            match &listener {
                Some(l) => l.accept().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            accepted = accepting => match accepted {
                Ok((stream, _)) => {
                    let _ = stream.set_nodelay(true);
                    on_connect();
                    conns.spawn(serve_connection(
                        stream,
                        handler.clone(),
                        transport,
                        refuse_tx.clone(),
                        shutdown.clone(),
                    ));
                }
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::debug!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            },
            Some((duration, ack)) = refusals.recv() => {
                // Connections waiting in the backlog are reset with the listener.
                listener = None;
                paused_until = paused_until.max(tokio::time::Instant::now() + duration);
                let _ = ack.send(());
            }
            () = tokio::time::sleep_until(paused_until), if listener.is_none() => {
                match relisten(addr) {
                    Ok(l) => listener = Some(l),
                    Err(e) => {
                        tracing::debug!("cannot listen again on {addr}: {e}");
                        paused_until = tokio::time::Instant::now() + Duration::from_millis(10);
                    }
                }
            }
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            _ = shutdown.changed() => break,
        }
    }
    drop(listener);
    while conns.join_next().await.is_some() {}
}

/// A listener on `addr` again, with `SO_REUSEADDR` so the connections still open on the port
/// do not keep it taken.
fn relisten(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

async fn serve_connection<H, F, B>(
    stream: TcpStream,
    handler: H,
    transport: Transport,
    refuse: mpsc::UnboundedSender<Refusal>,
    mut shutdown: watch::Receiver<bool>,
) where
    H: Fn(Request<Incoming>, ConnHandle) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<B>> + Send + 'static,
    B: hyper::body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let handle = ConnHandle::new(transport.flush, refuse);
    let io = TokioIo::new(SimIo {
        stream,
        reset: handle.reset.clone(),
        raw: handle.raw.clone(),
        raw_out: None,
    });
    let served = AtomicU32::new(0);
    let service = hyper::service::service_fn(move |request| {
        let earlier = served.fetch_add(1, Ordering::Relaxed);
        let unanswered = match transport.connections {
            Connections::KeepAlive => false,
            Connections::OneResponse => earlier > 0,
            Connections::ResetAll => {
                handle.reset_on_close();
                true
            }
        };
        let response = (!unanswered).then(|| handler(request, handle.clone()));
        async move {
            match response {
                Some(response) => Ok(response
                    .await
                    .map(|body| Linger::new(body, transport.linger))),
                None => Err(Unanswered),
            }
        }
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

/// A TCP stream that, when dropped with its reset flag set, closes with an RST, and that
/// writes a raw answer in place of hyper's when one is set.
struct SimIo {
    stream: TcpStream,
    reset: Arc<AtomicBool>,
    raw: Arc<Raw>,
    /// What is left to write of the raw answer taken from `raw`.
    raw_out: Option<Bytes>,
}

impl SimIo {
    /// `None`: no raw answer, write normally. Otherwise the raw answer is written in place of
    /// anything hyper writes, and then every write fails, so hyper closes the connection.
    fn poll_raw(&mut self, cx: &mut Context<'_>) -> Option<Poll<io::Result<usize>>> {
        if self.raw_out.is_none() && self.raw.set.swap(false, Ordering::Acquire) {
            self.raw_out = self.raw.bytes.lock().ok().and_then(|mut b| b.take());
        }
        let out = self.raw_out.as_mut()?;
        while !out.is_empty() {
            match Pin::new(&mut self.stream).poll_write(cx, out) {
                Poll::Ready(Ok(n)) => {
                    let _ = out.split_to(n);
                }
                Poll::Ready(Err(e)) => return Some(Poll::Ready(Err(e))),
                Poll::Pending => return Some(Poll::Pending),
            }
        }
        Some(Poll::Ready(Err(io::Error::new(
            io::ErrorKind::BrokenPipe,
            "raw answer sent: the connection closes",
        ))))
    }
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
        if let Some(raw) = self.poll_raw(cx) {
            return raw;
        }
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if let Some(raw) = self.poll_raw(cx) {
            return raw;
        }
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

/// A body that stays open `linger` after its inner body ended, then ends.
struct Linger<B> {
    inner: Pin<Box<B>>,
    linger: Duration,
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
    ended: bool,
}

impl<B> Linger<B> {
    fn new(inner: B, linger: Duration) -> Self {
        Self {
            inner: Box::pin(inner),
            linger,
            sleep: None,
            ended: false,
        }
    }
}

impl<B: hyper::body::Body<Data = Bytes>> hyper::body::Body for Linger<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Bytes>, B::Error>>> {
        let this = self.get_mut();
        if this.ended {
            return Poll::Ready(None);
        }
        if this.sleep.is_none() {
            match this.inner.as_mut().poll_frame(cx) {
                Poll::Ready(None) if !this.linger.is_zero() => {
                    this.sleep = Some(Box::pin(tokio::time::sleep(this.linger)));
                }
                Poll::Ready(None) => {
                    this.ended = true;
                    return Poll::Ready(None);
                }
                other => return other,
            }
        }
        let sleep = this.sleep.as_mut().expect("set above");
        std::task::ready!(sleep.as_mut().poll(cx));
        this.ended = true;
        Poll::Ready(None)
    }

    fn is_end_stream(&self) -> bool {
        self.ended || (self.linger.is_zero() && self.inner.is_end_stream())
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}
