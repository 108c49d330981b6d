//! The connector stack: TCP (`HttpConnector`, no Nagle, connect timeout) wrapped by rustls for
//! `https` URLs (verified as [`crate::tls`] says), with TCP-phase errors tagged so they can be
//! told apart from TLS failures.

use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::Uri;
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioIo;
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
    type Response = TokioIo<TcpStream>;
    type Error = TcpConnectError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner
            .poll_ready(cx)
            .map_err(|e| TcpConnectError(e.into()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let connecting = self.inner.call(uri);
        Box::pin(async move { connecting.await.map_err(|e| TcpConnectError(e.into())) })
    }
}
