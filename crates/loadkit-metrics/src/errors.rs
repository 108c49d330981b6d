//! The error taxonomy: error classes, and a bounded table that groups identical messages.

use std::collections::HashMap;
use std::fmt;

/// Which deadline a timeout hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TimeoutPhase {
    /// Establishing the connection (TCP and TLS).
    Connect,
    /// Waiting for the response headers.
    FirstByte,
    /// Waiting for the next piece of a stream.
    Idle,
    /// The whole request.
    Total,
}

impl TimeoutPhase {
    /// Stable lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            TimeoutPhase::Connect => "connect",
            TimeoutPhase::FirstByte => "first_byte",
            TimeoutPhase::Idle => "idle",
            TimeoutPhase::Total => "total",
        }
    }
}

/// The class of a failed request, as docs/metrics.md lists them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The TCP connection could not be established (refused, unreachable, DNS).
    Connect,
    /// The TLS handshake failed.
    Tls,
    /// A deadline passed.
    Timeout(TimeoutPhase),
    /// The server answered with a non-success HTTP status.
    HttpStatus(u16),
    /// The response broke the protocol: malformed frame, invalid JSON, invalid UTF-8, oversized event.
    Protocol,
    /// The stream ended (or the connection reset) before its end marker.
    Truncated,
    /// The server reported an error inside an otherwise valid response.
    Server,
    /// A WebSocket closed with this close code.
    WsClose(u16),
    /// A WebSocket keepalive failed: no pong within the ping timeout, or the server closed
    /// with 1011 (what `websockets` and most servers send when their own ping goes unanswered,
    /// e.g. while a long prefill blocks their event loop). Told apart from a context-length
    /// failure, which is a `Server`, `HttpStatus` or `WsClose` error with the server's text.
    KeepaliveTimeout,
    /// The response was well-formed but failed the success rule (e.g. too few chunks).
    Validation,
    /// The run stopped while the request was in flight.
    Cancelled,
}

impl ErrorKind {
    /// Stable class name used in reports (`http_status`, `timeout`, ...).
    pub fn class(self) -> &'static str {
        match self {
            ErrorKind::Connect => "connect",
            ErrorKind::Tls => "tls",
            ErrorKind::Timeout(_) => "timeout",
            ErrorKind::HttpStatus(_) => "http_status",
            ErrorKind::Protocol => "protocol",
            ErrorKind::Truncated => "truncated",
            ErrorKind::Server => "server_error",
            ErrorKind::WsClose(_) => "ws_close",
            ErrorKind::KeepaliveTimeout => "keepalive_timeout",
            ErrorKind::Validation => "validation",
            ErrorKind::Cancelled => "cancelled",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ErrorKind::Timeout(phase) => write!(f, "timeout ({})", phase.as_str()),
            ErrorKind::HttpStatus(code) => write!(f, "HTTP {code}"),
            ErrorKind::WsClose(code) => write!(f, "ws close {code}"),
            other => f.write_str(other.class()),
        }
    }
}

/// One row of the grouped error list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorGroup {
    /// The class name ([`ErrorKind::class`]), or the class of the folded rows for "other".
    pub class: String,
    /// The message shared by every occurrence.
    pub message: String,
    /// How many requests failed this way.
    pub count: u64,
}

/// Longest message kept; longer ones are cut at a character boundary and end in `...`.
const MAX_MESSAGE: usize = 240;

/// Groups identical (class, message) pairs with counts, in bounded memory.
///
/// At most `capacity` distinct groups are kept; occurrences of further distinct messages are
/// folded into one `other` row per class, so a server that puts a request id in every error
/// message cannot grow memory without bound.
#[derive(Debug, Clone)]
pub struct ErrorTable {
    capacity: usize,
    groups: HashMap<(&'static str, String), u64>,
    other: HashMap<&'static str, u64>,
}

impl ErrorTable {
    /// A table that keeps up to `capacity` distinct messages.
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            groups: HashMap::new(),
            other: HashMap::new(),
        }
    }

    /// Counts one occurrence of `message` in class `kind`.
    pub fn record(&mut self, kind: ErrorKind, message: &str) {
        self.record_n(kind.class(), message, 1);
    }

    fn record_n(&mut self, class: &'static str, message: &str, n: u64) {
        let message = clip(message);
        if let Some(count) = self.groups.get_mut(&(class, message.to_owned())) {
            *count += n;
        } else if self.groups.len() < self.capacity {
            self.groups.insert((class, message.to_owned()), n);
        } else {
            *self.other.entry(class).or_default() += n;
        }
    }

    /// Total occurrences recorded.
    pub fn total(&self) -> u64 {
        self.groups.values().sum::<u64>() + self.other.values().sum::<u64>()
    }

    /// Adds every group of `other`.
    pub fn merge(&mut self, other: &ErrorTable) {
        for ((class, message), n) in &other.groups {
            self.record_n(class, message, *n);
        }
        for (class, n) in &other.other {
            *self.other.entry(class).or_default() += n;
        }
    }

    /// The `top` most frequent groups (ties by class then message), then one `other` row per class
    /// holding everything else.
    pub fn top(&self, top: usize) -> Vec<ErrorGroup> {
        let mut rows: Vec<ErrorGroup> = self
            .groups
            .iter()
            .map(|((class, message), count)| ErrorGroup {
                class: (*class).to_owned(),
                message: message.clone(),
                count: *count,
            })
            .collect();
        rows.sort_by(|a, b| {
            b.count
                .cmp(&a.count)
                .then_with(|| a.class.cmp(&b.class))
                .then_with(|| a.message.cmp(&b.message))
        });
        let mut other: HashMap<String, u64> = self
            .other
            .iter()
            .map(|(c, n)| ((*c).to_owned(), *n))
            .collect();
        for row in rows.drain(top.min(rows.len())..).collect::<Vec<_>>() {
            *other.entry(row.class).or_default() += row.count;
        }
        let mut folded: Vec<ErrorGroup> = other
            .into_iter()
            .map(|(class, count)| ErrorGroup {
                class,
                message: "other".to_owned(),
                count,
            })
            .collect();
        folded.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.class.cmp(&b.class)));
        rows.extend(folded);
        rows
    }
}

impl Default for ErrorTable {
    fn default() -> Self {
        Self::new(256)
    }
}

fn clip(message: &str) -> &str {
    let message = message.trim();
    if message.len() <= MAX_MESSAGE {
        return message;
    }
    let mut end = MAX_MESSAGE;
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    &message[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identical_messages_group_most_frequent_first() {
        let mut t = ErrorTable::new(8);
        t.record(ErrorKind::HttpStatus(503), "HTTP 503: overloaded");
        t.record(ErrorKind::Truncated, "stream ended before [DONE]");
        t.record(ErrorKind::HttpStatus(503), "HTTP 503: overloaded");
        let rows = t.top(10);
        assert_eq!(rows[0].count, 2);
        assert_eq!(rows[0].class, "http_status");
        assert_eq!(rows[1].class, "truncated");
        assert_eq!(t.total(), 3);
    }

    #[test]
    fn distinct_messages_beyond_capacity_fold_into_other() {
        let mut t = ErrorTable::new(2);
        for i in 0..10 {
            t.record(ErrorKind::Server, &format!("request {i} failed"));
        }
        assert_eq!(t.total(), 10);
        let rows = t.top(1);
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[1].message, "other");
        assert_eq!(rows[1].count, 9);
    }

    #[test]
    fn long_messages_are_clipped_on_a_char_boundary() {
        let mut t = ErrorTable::new(4);
        t.record(ErrorKind::Protocol, &"é".repeat(500));
        assert!(t.top(1)[0].message.len() <= MAX_MESSAGE);
    }

    #[test]
    fn merge_combines_counts() {
        let mut a = ErrorTable::new(4);
        let mut b = ErrorTable::new(4);
        a.record(ErrorKind::Connect, "refused");
        b.record(ErrorKind::Connect, "refused");
        a.merge(&b);
        assert_eq!(a.top(4)[0].count, 2);
    }
}
