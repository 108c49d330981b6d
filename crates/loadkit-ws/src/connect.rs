//! Opening a WebSocket: TCP (no Nagle), rustls for `wss://` (loadkit-http's setup: the `ring`
//! provider, the Mozilla roots plus any private CA, or no verification when asked for), and the HTTP upgrade, all under one connect deadline,
//! each phase's failure classified; the stream both kinds of connection share; the polite close;
//! and how a failure while reading messages is classified, for every WebSocket protocol.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::{SinkExt as _, StreamExt as _};
use http::{HeaderName, HeaderValue, Uri};
use loadkit_core::metrics::{ErrorKind, TimeoutPhase};
use loadkit_core::{one_line, RequestError};
use loadkit_http::message::error_body_message;
use loadkit_http::tls::TlsOptions;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::error::ProtocolError;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::Error as WsError;
use tokio_tungstenite::WebSocketStream;

use crate::WsConfigError;

/// How long a connection being closed waits for the server's answering close frame (so the
/// server closes the TCP connection first, as RFC 6455 asks, and the client does not pile up
/// `TIME_WAIT` sockets) before it is dropped anyway.
pub const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// Bytes tungstenite reads from the socket at a time (its default, 128 KiB allocated up front
/// per connection, would cost 1.3 GB for 10,000 users).
const READ_BUFFER: usize = 8 * 1024;

/// An open WebSocket.
pub type Ws = WebSocketStream<Stream>;

/// A TCP connection, or a TLS session over one.
#[derive(Debug)]
pub enum Stream {
    /// `ws://`.
    Plain(TcpStream),
    /// `wss://`.
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// Where connections go: the parsed URL, the TLS setup for `wss://`, the upgrade's extra
/// headers and the WebSocket limits. Built once per client, checked up front; shared by every
/// WebSocket protocol (`ws-chat`, `tts-ws`).
pub struct Target {
    url: String,
    uri: Uri,
    host: String,
    port: u16,
    tls: Option<(TlsConnector, ServerName<'static>)>,
    headers: Vec<(HeaderName, HeaderValue)>,
    config: WebSocketConfig,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target")
            .field("url", &self.url)
            .field("tls", &self.tls.is_some())
            .field("headers", &self.headers.len())
            .finish_non_exhaustive()
    }
}

impl Target {
    /// Checks `url` (`ws://` or `wss://` with a host), the headers, and builds the TLS setup
    /// (certificates checked as `tls` says).
    ///
    /// # Errors
    ///
    /// The URL, a header, the size or the TLS setup is unusable.
    pub fn new(
        url: &str,
        headers: &[(String, String)],
        max_message_size: usize,
        tls: &TlsOptions,
    ) -> Result<Self, WsConfigError> {
        let options = tls;
        let invalid = |reason: &str| WsConfigError::InvalidUrl {
            url: url.to_owned(),
            reason: reason.to_owned(),
        };
        let mut uri: Uri = url
            .trim()
            .parse()
            .map_err(|e: http::uri::InvalidUri| invalid(&e.to_string()))?;
        let tls = match uri.scheme_str() {
            Some("ws") => false,
            Some("wss") => true,
            Some(other) => {
                return Err(WsConfigError::UnsupportedScheme {
                    url: url.to_owned(),
                    scheme: other.to_owned(),
                })
            }
            None => {
                return Err(invalid(
                    "expected an absolute url such as ws://host:port/ws",
                ))
            }
        };
        let authority = uri.authority().map(|a| a.as_str().to_owned());
        let bracketed = match uri.host() {
            Some(host) if !host.is_empty() => host.to_owned(),
            _ => return Err(invalid("the url has no host")),
        };
        let host = bracketed
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let port = match uri.port_u16() {
            Some(port) => port,
            None => {
                // `Uri` keeps an out-of-range port as text: tell it from no port at all.
                let authority = authority.as_deref().unwrap_or_default();
                let after_host = authority
                    .rsplit_once(&bracketed)
                    .map_or("", |(_, rest)| rest);
                if after_host.len() > 1 {
                    return Err(invalid("the port is not a number from 0 to 65535"));
                }
                if tls {
                    443
                } else {
                    80
                }
            }
        };
        if uri.path_and_query().is_none() {
            let mut parts = uri.into_parts();
            parts.path_and_query = Some(http::uri::PathAndQuery::from_static("/"));
            uri = Uri::from_parts(parts).map_err(|e| invalid(&e.to_string()))?;
        }
        let headers = headers
            .iter()
            .map(|(name, value)| loadkit_http::parse_header(name, value))
            .collect::<Result<Vec<_>, _>>()?;
        let tls = if tls {
            let name = ServerName::try_from(host.clone())
                .map_err(|_| invalid("the host is not a valid tls server name"))?;
            Some((TlsConnector::from(tls_config(options)?), name))
        } else {
            None
        };
        if max_message_size == 0 {
            return Err(WsConfigError::ZeroSize("max message size"));
        }
        let config = WebSocketConfig::default()
            .read_buffer_size(READ_BUFFER)
            .max_message_size(Some(max_message_size))
            .max_frame_size(Some(max_message_size));
        Ok(Self {
            url: url.trim().to_owned(),
            uri,
            host,
            port,
            tls,
            headers,
            config,
        })
    }

    /// The URL as given.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Opens a WebSocket: TCP, TLS for `wss://`, and the upgrade, within `timeout` in all.
    ///
    /// Failures: refused, unreachable or unresolvable → `connect`; the TLS handshake → `tls`;
    /// the upgrade answered with a status → `http_status` with the body's message; a broken or
    /// foreign answer to the upgrade → `protocol` (or `truncated` when the connection closed
    /// before it); the deadline → `timeout (connect)`.
    ///
    /// # Errors
    ///
    /// As above, classified.
    pub async fn connect(&self, timeout: Duration) -> Result<Ws, RequestError> {
        match tokio::time::timeout(timeout, self.open()).await {
            Ok(result) => result,
            Err(_) => Err(RequestError::timeout(TimeoutPhase::Connect, timeout)),
        }
    }

    async fn open(&self) -> Result<Ws, RequestError> {
        let tcp = self.tcp().await?;
        let stream = match &self.tls {
            None => Stream::Plain(tcp),
            Some((connector, name)) => {
                let tls = connector
                    .connect(name.clone(), tcp)
                    .await
                    .map_err(|e| tls_error(&e))?;
                Stream::Tls(Box::new(tls))
            }
        };
        let mut request = self
            .uri
            .clone()
            .into_client_request()
            .map_err(|e| RequestError::protocol(format!("websocket upgrade failed: {e}")))?;
        let mut seen: Vec<&HeaderName> = Vec::new();
        for (name, value) in &self.headers {
            // The first value of a name replaces what tungstenite generated (`Host`, ...);
            // later ones are added beside it.
            if seen.contains(&name) {
                request.headers_mut().append(name.clone(), value.clone());
            } else {
                request.headers_mut().insert(name.clone(), value.clone());
                seen.push(name);
            }
        }
        let (ws, _response) =
            tokio_tungstenite::client_async_with_config(request, stream, Some(self.config))
                .await
                .map_err(|e| upgrade_error(&e))?;
        Ok(ws)
    }

    async fn tcp(&self) -> Result<TcpStream, RequestError> {
        let addrs = tokio::net::lookup_host((self.host.as_str(), self.port))
            .await
            .map_err(|_| RequestError::new(ErrorKind::Connect, "dns resolution failed"))?;
        let mut last = None;
        for addr in addrs {
            match TcpStream::connect(addr).await {
                Ok(tcp) => {
                    let _ = tcp.set_nodelay(true);
                    return Ok(tcp);
                }
                Err(e) => last = Some(e),
            }
        }
        Err(match last {
            Some(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                RequestError::new(ErrorKind::Connect, "connection refused")
            }
            Some(e) => {
                RequestError::new(ErrorKind::Connect, format!("connect failed: {}", e.kind()))
            }
            None => RequestError::new(ErrorKind::Connect, "dns resolution found no address"),
        })
    }
}

/// loadkit-http's rustls setup (the `ring` provider, the Mozilla roots plus any private CA, or
/// no verification when `insecure`) with HTTP/1.1 ALPN.
fn tls_config(options: &TlsOptions) -> Result<Arc<rustls::ClientConfig>, WsConfigError> {
    loadkit_http::tls::client_config(options, &[b"http/1.1"])
        .map(Arc::new)
        .map_err(|e| WsConfigError::Tls(e.to_string()))
}

fn tls_error(e: &io::Error) -> RequestError {
    let message = match e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        Some(tls) => format!("tls handshake failed: {tls}"),
        None => format!("tls handshake failed: {}", e.kind()),
    };
    RequestError::new(ErrorKind::Tls, message)
}

/// A failed upgrade, classified.
fn upgrade_error(e: &WsError) -> RequestError {
    match e {
        WsError::Http(response) => {
            let body = response.body().as_deref().unwrap_or_default();
            let message = if body.trim_ascii().is_empty() {
                String::new()
            } else {
                error_body_message(body)
            };
            RequestError::http_status(response.status().as_u16(), &message)
        }
        WsError::Io(io) if is_closed(io.kind()) => {
            RequestError::truncated("connection closed during the websocket upgrade")
        }
        WsError::Io(io) => {
            RequestError::protocol(format!("websocket upgrade failed: {}", io.kind()))
        }
        WsError::Protocol(p) => RequestError::protocol(format!("websocket upgrade failed: {p}")),
        other => RequestError::protocol(format!("websocket upgrade failed: {other}")),
    }
}

/// `true` for the ways a peer's close or reset shows up on a socket.
pub fn is_closed(kind: io::ErrorKind) -> bool {
    matches!(
        kind,
        io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::UnexpectedEof
    )
}

/// Closes `ws` politely in the background: a close frame, then the server's answering close
/// (for up to [`CLOSE_GRACE`]), then the connection is dropped. Outside a tokio runtime (or
/// once it is shutting down) the connection is just dropped: the server sees 1006.
pub fn close_in_background(mut ws: Ws) {
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        runtime.spawn(async move {
            let _ = tokio::time::timeout(CLOSE_GRACE, async {
                if ws.close(None).await.is_ok() {
                    while let Some(Ok(_)) = ws.next().await {}
                }
            })
            .await;
        });
    }
}

/// Closes `ws` politely and waits for the server's close (up to [`CLOSE_GRACE`]).
pub async fn close(mut ws: Ws) {
    let _ = tokio::time::timeout(CLOSE_GRACE, async {
        let _ = ws.flush().await;
        if ws.close(None).await.is_ok() {
            while let Some(Ok(_)) = ws.next().await {}
        }
    })
    .await;
}

/// The server's close frame before the client had what it waited for (`waiting_for`, such as
/// `the end message (/type=done)`): 1011 is a keepalive failure, any other code a `ws_close`.
pub fn closed_error(frame: Option<&CloseFrame>, waiting_for: &str) -> RequestError {
    let (code, reason) = match frame {
        Some(f) => (u16::from(f.code), one_line(f.reason.as_str())),
        None => (1005, String::new()),
    };
    let what = if reason.is_empty() {
        close_name(code).to_owned()
    } else {
        reason
    };
    let message = format!("websocket closed with {code} ({what}) before {waiting_for}");
    let kind = if code == 1011 {
        ErrorKind::KeepaliveTimeout
    } else {
        ErrorKind::WsClose(code)
    };
    RequestError::new(kind, message)
}

/// The connection ended without a close frame (1006) before `waiting_for`; `cause` is the
/// socket's error when it was not a plain close or reset.
pub fn dropped_error(cause: Option<io::ErrorKind>, waiting_for: &str) -> RequestError {
    let what = match cause {
        None => close_name(1006).to_owned(),
        Some(kind) => format!("connection failed: {kind}"),
    };
    RequestError::new(
        ErrorKind::WsClose(1006),
        format!("websocket closed with 1006 ({what}) before {waiting_for}"),
    )
}

/// An error reading messages, classified: too big or not UTF-8 → `protocol`; the connection
/// gone → `ws_close` 1006 ([`dropped_error`]); any other protocol violation → `protocol`.
/// The flag says the connection was dropped (so a request on a reused one may be resent).
pub fn read_error(e: &WsError, max_message_size: usize, waiting_for: &str) -> (RequestError, bool) {
    let protocol = |m: String| (RequestError::protocol(m), false);
    match e {
        WsError::Capacity(_) => protocol(format!(
            "message exceeds the maximum size of {max_message_size} bytes"
        )),
        WsError::Utf8(_) => protocol("malformed message: a text message is not valid utf-8".into()),
        WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake)
        | WsError::ConnectionClosed
        | WsError::AlreadyClosed => (dropped_error(None, waiting_for), true),
        WsError::Io(io) if is_closed(io.kind()) => (dropped_error(None, waiting_for), true),
        WsError::Io(io) => (dropped_error(Some(io.kind()), waiting_for), true),
        WsError::Protocol(p) => protocol(format!("websocket protocol error: {p}")),
        other => protocol(format!("websocket error: {other}")),
    }
}

/// What RFC 6455 (and the IANA registry) calls a close code.
pub fn close_name(code: u16) -> &'static str {
    match code {
        1000 => "normal closure",
        1001 => "going away",
        1002 => "protocol error",
        1003 => "unsupported data",
        1005 => "no status code",
        1006 => "connection dropped without a close frame",
        1007 => "invalid payload data",
        1008 => "policy violation",
        1009 => "message too big",
        1010 => "mandatory extension",
        1011 => "internal error",
        1012 => "service restart",
        1013 => "try again later",
        1014 => "bad gateway",
        _ => "no reason given",
    }
}
