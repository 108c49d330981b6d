//! The connector stack: TCP (`HttpConnector`, no Nagle, connect timeout) wrapped by rustls for
//! `https` URLs (verified as [`crate::tls`] says), with TCP-phase errors tagged so they can be told apart from TLS failures, and
//! every connection carrying a count of the responses it served (to tell a reused connection
//! from a new one when a request fails).

use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use http::Uri;
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tower_service::Service;

use crate::{HttpConfig, HttpConfigError};

type BoxError = Box<dyn StdError + Send + Sync>;

/// The full connector: plain TCP for `http`, TCP + TLS for `https`.
pub(crate) type Connector = HttpsConnector<TcpConnector>;

/// Builds the connector stack for `config`.
pub(crate) fn connector(config: &HttpConfig) -> Result<Connector, HttpConfigError> {
    let mut http = HttpConnector::new();
    http.set_nodelay(true);
    http.set_connect_timeout(Some(config.connect_timeout));
    http.enforce_http(false);
    let tls = crate::tls::client_config(&config.tls, &[])
        .map_err(|e| HttpConfigError::Tls(e.to_string()))?;
    Ok(HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .wrap_connector(TcpConnector { inner: http }))
}

/// `HttpConnector` whose errors are wrapped in [`TcpConnectError`], so that anything else the
/// HTTPS layer reports is known to come from the TLS handshake.
#[derive(Debug, Clone)]
pub(crate) struct TcpConnector {
    inner: HttpConnector,
}

/// The TCP phase of connecting failed (DNS, refused, unreachable, connect timeout).
#[derive(Debug)]
pub(crate) struct TcpConnectError(BoxError);

impl fmt::Display for TcpConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("tcp connect failed")
    }
}

impl StdError for TcpConnectError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        Some(&*self.0)
    }
}

impl Service<Uri> for TcpConnector {
    type Response = TokioIo<CountedTcp>;
    type Error = TcpConnectError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner
            .poll_ready(cx)
            .map_err(|e| TcpConnectError(e.into()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let connecting = self.inner.call(uri);
        Box::pin(async move {
            let stream = connecting.await.map_err(|e| TcpConnectError(e.into()))?;
            Ok(TokioIo::new(CountedTcp {
                stream: stream.into_inner(),
                served: Served::default(),
            }))
        })
    }
}

/// How many response heads one connection has delivered, shared by the connection and every
/// request that learns which connection it used (through hyper-util's `Connected` extras).
#[derive(Debug, Clone, Default)]
pub(crate) struct Served(Arc<AtomicU64>);

impl Served {
    /// Counts one response head received on the connection.
    pub(crate) fn add(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    /// `true` when the connection delivered a response before: it was reused from the pool.
    pub(crate) fn was_reused(&self) -> bool {
        self.0.load(Ordering::Relaxed) > 0
    }

    /// The count carried by a connection's `Connected` info, if it is one of ours.
    pub(crate) fn of(connected: &Connected) -> Option<Served> {
        let mut extensions = http::Extensions::new();
        connected.get_extras(&mut extensions);
        extensions.get::<Served>().cloned()
    }
}

/// A TCP stream whose `Connected` info carries its [`Served`] count.
#[derive(Debug)]
pub(crate) struct CountedTcp {
    stream: TcpStream,
    served: Served,
}

impl Connection for CountedTcp {
    fn connected(&self) -> Connected {
        self.stream.connected().extra(self.served.clone())
    }
}

impl AsyncRead for CountedTcp {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for CountedTcp {
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
