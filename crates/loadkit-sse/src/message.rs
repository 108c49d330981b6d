//! Error-message helpers shared by the protocol clients: server messages squeezed onto one short
//! line, and `serde_json` errors turned into groupable [`RequestError`]s.
//!
//! Messages are grouped in the report by their exact text, so nothing here adds per-request
//! values (positions, quoted data) that the caller did not ask for.

use loadkit_core::RequestError;

use crate::text_len::StringError;

/// The text used when a server reports an error with an empty message.
pub const NO_MESSAGE: &str = "server reported an error without a message";

/// `text` on one line: runs of whitespace become one space, and it is cut after the first word
/// that takes it past 200 bytes. Empty (or all-whitespace) text gives [`NO_MESSAGE`].
///
/// ```
/// use loadkit_sse::message::{one_line, NO_MESSAGE};
///
/// assert_eq!(one_line("model  \"x\"\n not found"), "model \"x\" not found");
/// assert_eq!(one_line(" \n"), NO_MESSAGE);
/// ```
pub fn one_line(text: &str) -> String {
    let mut out = String::new();
    for word in text.split_whitespace() {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
        if out.len() > 200 {
            break;
        }
    }
    if out.is_empty() {
        NO_MESSAGE.to_owned()
    } else {
        out
    }
}

/// What [`json_error`] says about a type error: JSON that parses but does not have the
/// expected structure (`serde_json`'s `Category::Data`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataErrors {
    /// `serde_json`'s own message (without its position), which may quote the data, such as
    /// `invalid type: string "x", expected u64`.
    Quote,
    /// The fixed text `unexpected json structure`, so such errors group whatever the data.
    Fixed,
}

/// `serde_json`'s message without its ` at line L column C` position.
pub fn without_position(e: &serde_json::Error) -> String {
    let text = e.to_string();
    match text.find(" at line ") {
        Some(at) => text[..at].to_owned(),
        None => text,
    }
}

/// A protocol error `"{what}: {message}"` for a response that is not the JSON expected, where
/// the message is `serde_json`'s without its position, and for a type error as `data` says.
///
/// A string that [`TextLen`](crate::TextLen) rejects (a lone surrogate such as `"\ud800"`)
/// keeps its message, as serde_json's own syntax errors do, although serde_json can only
/// classify an error raised while deserializing a value as a data error.
///
/// ```
/// use loadkit_sse::message::{json_error, DataErrors};
///
/// let e = serde_json::from_str::<u64>("\"x\"").unwrap_err();
/// let quoted = json_error("malformed line", &e, DataErrors::Quote);
/// assert_eq!(quoted.message, "malformed line: invalid type: string \"x\", expected u64");
/// let fixed = json_error("malformed chunk", &e, DataErrors::Fixed);
/// assert_eq!(fixed.message, "malformed chunk: unexpected json structure");
/// ```
pub fn json_error(what: &str, e: &serde_json::Error, data: DataErrors) -> RequestError {
    let message = without_position(e);
    let message = match (e.classify(), data) {
        (serde_json::error::Category::Data, DataErrors::Fixed)
            if !StringError::is_one(&message) =>
        {
            "unexpected json structure".to_owned()
        }
        _ => message,
    };
    RequestError::protocol(format!("{what}: {message}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_squeezes_and_cuts() {
        assert_eq!(one_line("a\n\t b  c"), "a b c");
        assert_eq!(one_line(""), NO_MESSAGE);
        let long = "word ".repeat(100);
        let cut = one_line(&long);
        assert!(cut.len() > 200 && cut.len() <= 205, "{}", cut.len());
    }

    #[test]
    fn json_errors_have_no_position() {
        let e = serde_json::from_slice::<serde_json::Value>(b"{\"a\":").unwrap_err();
        for data in [DataErrors::Quote, DataErrors::Fixed] {
            let error = json_error("malformed response", &e, data);
            assert_eq!(
                error.message,
                "malformed response: EOF while parsing a value"
            );
        }
        assert_eq!(without_position(&e), "EOF while parsing a value");
    }
}
