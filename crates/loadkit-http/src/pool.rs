//! loadkit's own keep-alive pool over hyper's `client::conn::http1`: each request drives its
//! connection inside its own task, so a response's body chunks reach the reader without a
//! connection task in between.
//!
//! Why not hyper-util's pooled client: it runs every connection in a task of its own, and its
//! body channel holds one chunk, so each chunk of a streamed response cost two task switches
//! (the connection task decodes it and waits; the reader's task takes it and wakes the
//! connection task). Measured with `cargo xtask bench-stream` (64 streams × 256 tokens, each
//! token its own HTTP chunk, client and server pinned to a core each): 770 k events per client
//! CPU-second through hyper-util, with `atomic_waker`, task wake-ups and `body::chan` about a
//! fifth of the client's profile. Here the connection is polled by whoever holds it: the
//! request future while the head is awaited, [`ResponseBody`](crate::ResponseBody) while the
//! body is read, and nobody while it sits idle in the pool (a server's close is noticed at the
//! next checkout, by one poll, and such a connection is dropped unused).
//!
//! The pool itself is a list of idle connections per scheme and authority behind one
//! `std::sync::Mutex`, taken twice per request (checkout and return, a few tens of
//! nanoseconds uncontended) and never per chunk; the most recently returned connection is
//! taken first, and one idle for longer than the idle timeout is dropped with every older one.

use std::future::{poll_fn, Future as _};
use std::pin::{pin, Pin};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use http::uri::{Authority, Scheme};
use http::Uri;
use hyper::body::Incoming;
use hyper::client::conn::http1;
use hyper_rustls::MaybeHttpsStream;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::body::RequestBody;

/// The byte stream of one connection: TCP, or TLS over TCP.
pub(crate) type Io = MaybeHttpsStream<TokioIo<TcpStream>>;

/// Which connections may serve a request: same scheme, same host and port.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Key {
    scheme: Option<Scheme>,
    authority: Option<Authority>,
}

impl Key {
    fn of(uri: &Uri) -> Self {
        Self {
            scheme: uri.scheme().cloned(),
            authority: uri.authority().cloned(),
        }
    }

    fn matches(&self, uri: &Uri) -> bool {
        self.scheme.as_ref() == uri.scheme() && self.authority.as_ref() == uri.authority()
    }
}

/// One HTTP/1.1 connection: the request sender and the connection's I/O, polled by its holder.
pub(crate) struct Conn {
    sender: http1::SendRequest<RequestBody>,
    driver: http1::Connection<Io, RequestBody>,
    /// Response heads this connection delivered: more than zero means it was reused.
    served: u64,
    /// The connection's I/O ended (closed by either side, or failed).
    closed: bool,
    /// Where it goes back when its response ended cleanly (`None`: closed after one use). Weak:
    /// a pool holding its idle connections must not be kept alive by them.
    home: Option<(Weak<Shared>, Key)>,
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conn")
            .field("served", &self.served)
            .field("closed", &self.closed)
            .finish_non_exhaustive()
    }
}

impl Conn {
    /// Handshakes HTTP/1.1 on `io` (no I/O happens until the connection is polled).
    pub(crate) async fn handshake(
        io: Io,
        read_buffer: Option<usize>,
        home: Option<(&Pool, &Uri)>,
    ) -> Result<Box<Self>, hyper::Error> {
        let mut builder = http1::Builder::new();
        if let Some(size) = read_buffer {
            builder.read_buf_exact_size(Some(size));
        }
        let (sender, driver) = builder.handshake(io).await?;
        Ok(Box::new(Self {
            sender,
            driver,
            served: 0,
            closed: false,
            home: home.map(|(pool, uri)| (Arc::downgrade(&pool.shared), Key::of(uri))),
        }))
    }

    /// Polls the connection's I/O (writes what is queued, reads what arrived and hands it to
    /// the response). `true` once the connection has ended.
    pub(crate) fn drive(&mut self, cx: &mut Context<'_>) -> bool {
        if !self.closed && Pin::new(&mut self.driver).poll(cx).is_ready() {
            self.closed = true;
        }
        self.closed
    }

    /// `true` when the connection delivered a response before this one.
    pub(crate) fn reused(&self) -> bool {
        self.served > 0
    }

    /// Counts one response head delivered.
    pub(crate) fn served(&mut self) {
        self.served += 1;
    }

    /// Waits until the connection takes a request (a new one needs a first poll for that).
    pub(crate) async fn ready(&mut self) -> Result<(), hyper::Error> {
        poll_fn(|cx| {
            self.drive(cx);
            self.sender.poll_ready(cx)
        })
        .await
    }

    /// Whether an idle connection can take a request now, without waiting: its I/O has not
    /// ended (one poll notices a server's close) and it is ready.
    async fn usable_now(&mut self) -> bool {
        poll_fn(|cx| {
            let closed = self.drive(cx);
            Poll::Ready(!closed && matches!(self.sender.poll_ready(cx), Poll::Ready(Ok(()))))
        })
        .await
    }

    /// Sends `request` and waits for its response head, driving the connection meanwhile.
    pub(crate) async fn send(
        &mut self,
        request: http::Request<RequestBody>,
    ) -> Result<http::Response<Incoming>, hyper::Error> {
        let mut response = pin!(self.sender.send_request(request));
        poll_fn(|cx| {
            self.drive(cx);
            response.as_mut().poll(cx)
        })
        .await
    }

    /// Gives the connection back to its pool after a response that ended cleanly; drops it
    /// (closing it) when it has ended or belongs to no pool.
    pub(crate) fn release(mut self: Box<Self>) {
        if self.closed {
            return;
        }
        if let Some((shared, key)) = self.home.take() {
            if let Some(shared) = shared.upgrade() {
                Pool { shared }.put(key, self);
            }
        }
    }
}

/// Idle connections of one scheme and authority, the most recently returned last.
struct Host {
    key: Key,
    idle: Vec<(Box<Conn>, Instant)>,
}

/// The shared pool of idle keep-alive connections. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Pool {
    shared: Arc<Shared>,
}

struct Shared {
    hosts: Mutex<Vec<Host>>,
    max_idle_per_host: usize,
    idle_timeout: Duration,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("max_idle_per_host", &self.shared.max_idle_per_host)
            .field("idle_timeout", &self.shared.idle_timeout)
            .finish_non_exhaustive()
    }
}

impl Pool {
    pub(crate) fn new(max_idle_per_host: usize, idle_timeout: Duration) -> Self {
        Self {
            shared: Arc::new(Shared {
                hosts: Mutex::default(),
                max_idle_per_host,
                idle_timeout,
            }),
        }
    }

    /// An idle connection to `uri`'s scheme and authority that can take a request now, if
    /// the pool has one.
    pub(crate) async fn take(&self, uri: &Uri) -> Option<Box<Conn>> {
        loop {
            let mut conn = self.pop(uri)?;
            if conn.usable_now().await {
                return Some(conn);
            }
        }
    }

    /// The most recently returned idle connection for `uri` that has not idled out.
    fn pop(&self, uri: &Uri) -> Option<Box<Conn>> {
        let mut hosts = self.shared.hosts.lock().ok()?;
        let host = hosts.iter_mut().find(|h| h.key.matches(uri))?;
        let (conn, since) = host.idle.pop()?;
        if since.elapsed() > self.shared.idle_timeout {
            // Every connection below it was returned earlier: all idled out.
            host.idle.clear();
            return None;
        }
        Some(conn)
    }

    fn put(&self, key: Key, mut conn: Box<Conn>) {
        if self.shared.max_idle_per_host == 0 {
            return;
        }
        let Ok(mut hosts) = self.shared.hosts.lock() else {
            return;
        };
        let at = match hosts.iter().position(|h| h.key == key) {
            Some(at) => at,
            None => {
                hosts.push(Host {
                    key: key.clone(),
                    idle: Vec::new(),
                });
                hosts.len() - 1
            }
        };
        let idle = &mut hosts[at].idle;
        if idle.len() < self.shared.max_idle_per_host {
            conn.home = Some((Arc::downgrade(&self.shared), key));
            idle.push((conn, Instant::now()));
        }
    }
}
