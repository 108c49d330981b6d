//! Maps hyper, connector and rustls errors onto loadkit's error taxonomy, with messages that
//! carry no per-request values (addresses, ports, ids) so identical failures group in the report.

use std::error::Error as StdError;
use std::io;

use loadkit_core::metrics::{ErrorKind, TimeoutPhase};
use loadkit_core::RequestError;

use crate::connect::TcpConnectError;
use crate::HttpConfig;

/// Every error in `err`'s chain, including the errors wrapped *inside* `io::Error`s (whose
/// `source()` skips the wrapped error itself).
fn chain<'a>(err: &'a (dyn StdError + 'static)) -> Vec<&'a (dyn StdError + 'static)> {
    let mut out = Vec::new();
    let mut stack = vec![err];
    while let Some(e) = stack.pop() {
        if out.len() >= 32 {
            break;
        }
        out.push(e);
        if let Some(source) = e.source() {
            stack.push(source);
        }
        if let Some(inner) = e.downcast_ref::<io::Error>().and_then(|io| io.get_ref()) {
            stack.push(inner);
        }
    }
    out
}

fn find<'a, T: StdError + 'static>(chain: &[&'a (dyn StdError + 'static)]) -> Option<&'a T> {
    chain.iter().find_map(|e| e.downcast_ref::<T>())
}

/// The innermost `io::Error` that carries a meaningful kind.
fn io_kind(chain: &[&(dyn StdError + 'static)]) -> Option<io::ErrorKind> {
    chain
        .iter()
        .filter_map(|e| e.downcast_ref::<io::Error>())
        .map(io::Error::kind)
        .rfind(|k| *k != io::ErrorKind::Other)
}

fn is_reset(kind: io::ErrorKind) -> bool {
    matches!(
        kind,
        io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe
    )
}

/// A failure to open a connection: TCP phase (connect, DNS, connect timeout) or TLS handshake.
pub(crate) fn connect_error(err: &(dyn StdError + 'static), config: &HttpConfig) -> RequestError {
    let chain = chain(err);
    if find::<TcpConnectError>(&chain).is_some() {
        if chain.iter().any(|e| e.to_string() == "dns error") {
            return RequestError::new(ErrorKind::Connect, "dns resolution failed");
        }
        return match io_kind(&chain) {
            Some(io::ErrorKind::TimedOut) => {
                RequestError::timeout(TimeoutPhase::Connect, config.connect_timeout)
            }
            Some(kind) => RequestError::new(ErrorKind::Connect, kind_message(kind)),
            None => RequestError::new(ErrorKind::Connect, "connect failed"),
        };
    }
    if let Some(tls) = find::<rustls::Error>(&chain) {
        return RequestError::new(ErrorKind::Tls, format!("tls handshake failed: {tls}"));
    }
    match io_kind(&chain) {
        Some(kind) => RequestError::new(ErrorKind::Tls, format!("tls handshake failed: {kind}")),
        None => RequestError::new(ErrorKind::Connect, format!("connect failed: {err}")),
    }
}

fn kind_message(kind: io::ErrorKind) -> String {
    match kind {
        io::ErrorKind::ConnectionRefused => "connection refused".to_owned(),
        other => format!("connect failed: {other}"),
    }
}

/// A failure after the request went out on an open connection, before its response head.
pub(crate) fn head_error(err: &(dyn StdError + 'static)) -> RequestError {
    let chain = chain(err);
    if let Some(h) = find::<hyper::Error>(&chain) {
        if h.is_parse() || h.is_parse_status() {
            return RequestError::protocol("malformed http response head");
        }
        if h.is_incomplete_message() {
            return RequestError::truncated("connection closed before the response head");
        }
    }
    match io_kind(&chain) {
        Some(kind) if is_reset(kind) => {
            RequestError::truncated("connection reset before the response head")
        }
        Some(io::ErrorKind::UnexpectedEof) => {
            RequestError::truncated("connection closed before the response head")
        }
        Some(kind) => RequestError::truncated(format!("request failed: {kind}")),
        None => RequestError::truncated(format!("request failed: {err}")),
    }
}

/// `true` when `err`, from a request sent on a *reused* connection (one that had delivered a
/// response before), is what a server's close of an idle keep-alive connection looks like: it
/// closed or reset before any byte of this response arrived. A malformed head or a timeout is
/// not, and nothing on a new connection is.
pub(crate) fn is_stale_connection(err: &hyper::Error) -> bool {
    let chain = chain(err);
    if let Some(h) = find::<hyper::Error>(&chain) {
        if h.is_parse() || h.is_parse_status() || h.is_timeout() {
            return false;
        }
        if h.is_incomplete_message() || h.is_canceled() || h.is_closed() {
            return true;
        }
    }
    matches!(io_kind(&chain), Some(kind) if is_reset(kind) || kind == io::ErrorKind::UnexpectedEof)
}

/// A failure while reading the response body.
pub(crate) fn body_error(err: &hyper::Error) -> RequestError {
    let chain = chain(err);
    match io_kind(&chain) {
        Some(kind) if is_reset(kind) => {
            return RequestError::truncated("connection reset mid-stream")
        }
        Some(io::ErrorKind::UnexpectedEof) => {
            return RequestError::truncated("connection closed mid-stream")
        }
        Some(io::ErrorKind::InvalidData | io::ErrorKind::InvalidInput) => {
            return RequestError::protocol("malformed http body framing")
        }
        _ => {}
    }
    if err.is_incomplete_message() {
        return RequestError::truncated("connection closed mid-stream");
    }
    if err.is_parse() {
        return RequestError::protocol("malformed http body framing");
    }
    RequestError::truncated(format!("body read failed: {err}"))
}
