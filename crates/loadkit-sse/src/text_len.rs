//! `TextLen`: the byte length of a JSON text field, measured while deserializing without
//! copying or unescaping it, shared by the protocol parsers on the per-chunk path.
//!
//! serde_json hands a visitor a string with escapes (`\n`, `\"`, `\u00e9`) only after
//! unescaping it into its scratch buffer, which allocates on the first such string of every
//! document parsed. So `TextLen` takes the value's raw JSON text instead (serde_json's
//! [`RawValue`], borrowed from the input) and counts the UTF-8 bytes the escapes stand for
//! itself, with serde_json's own rules: a simple escape is 1 byte, `\uXXXX` is the UTF-8 length
//! of its code point, a surrogate pair is 4 bytes, and a lone surrogate is rejected with
//! serde_json's message.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer};
use serde_json::value::RawValue;

/// The byte length of a JSON string, measured without copying it. `null`, numbers, booleans and
/// objects measure 0; an array measures its number of elements, so a non-empty array (such as
/// Ollama's `tool_calls`) counts as content.
///
/// Measuring allocates nothing: the value is borrowed as raw JSON text and escapes are counted,
/// not decoded. Because it borrows, `TextLen` deserializes only with serde_json from a slice or
/// a `str` (`from_slice`, `from_str`), not from a reader or a [`serde_json::Value`].
///
/// Kept to 4 bytes: serde moves the values it builds, and large per-chunk structs turn into
/// `memcpy` calls on the hot path.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TextLen(u32);

impl TextLen {
    /// A length of `len` bytes (saturating at `u32::MAX`).
    pub fn new(len: usize) -> Self {
        TextLen(u32::try_from(len).unwrap_or(u32::MAX))
    }

    /// The length in bytes.
    pub fn get(self) -> usize {
        self.0 as usize
    }
}

impl<'de> Deserialize<'de> for TextLen {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = <&RawValue>::deserialize(d)?.get().as_bytes();
        match raw.first() {
            Some(b'"') => unescaped_len(&raw[1..raw.len() - 1])
                .map(TextLen::new)
                .map_err(de::Error::custom),
            Some(b'[') => Ok(TextLen::new(array_len(raw))),
            // null, numbers, booleans, objects.
            _ => Ok(TextLen(0)),
        }
    }
}

/// Why a string body is not valid JSON, in serde_json's words (its `ErrorCode` texts).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StringError {
    Eof,
    InvalidEscape,
    LoneSurrogate,
    UnexpectedEndOfHexEscape,
}

impl StringError {
    const ALL: [StringError; 4] = [
        StringError::Eof,
        StringError::InvalidEscape,
        StringError::LoneSurrogate,
        StringError::UnexpectedEndOfHexEscape,
    ];

    fn text(self) -> &'static str {
        match self {
            StringError::Eof => "EOF while parsing a string",
            StringError::InvalidEscape => "invalid escape",
            StringError::LoneSurrogate => "lone leading surrogate in hex escape",
            StringError::UnexpectedEndOfHexEscape => "unexpected end of hex escape",
        }
    }

    /// `true` if `message` (without its position) is one of these. serde_json can only report
    /// an error raised by a `Deserialize` impl as a data error; the message helpers use this to
    /// show these as the syntax errors they are, as serde_json itself would.
    pub(crate) fn is_one(message: &str) -> bool {
        StringError::ALL.iter().any(|e| e.text() == message)
    }
}

impl fmt::Display for StringError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.text())
    }
}

fn hex4(rest: &mut &[u8]) -> Result<u16, StringError> {
    let Some((digits, after)) = rest.split_first_chunk::<4>() else {
        return Err(StringError::Eof);
    };
    let mut n = 0u16;
    for &d in digits {
        let v = match d {
            b'0'..=b'9' => d - b'0',
            b'a'..=b'f' => d - b'a' + 10,
            b'A'..=b'F' => d - b'A' + 10,
            _ => return Err(StringError::InvalidEscape),
        };
        n = (n << 4) | u16::from(v);
    }
    *rest = after;
    Ok(n)
}

/// The UTF-8 length of the JSON string whose body (between the quotes) is `body`, which
/// serde_json has already checked to be UTF-8 without control characters. Escapes are checked
/// as serde_json checks them when it deserializes a `String`.
pub(crate) fn unescaped_len(body: &[u8]) -> Result<usize, StringError> {
    let mut len = 0usize;
    let mut rest = body;
    while let Some(i) = memchr::memchr(b'\\', rest) {
        len += i;
        let Some((&c, after)) = rest[i + 1..].split_first() else {
            return Err(StringError::Eof);
        };
        rest = after;
        len += match c {
            b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => 1,
            b'u' => match hex4(&mut rest)? {
                0xDC00..=0xDFFF => return Err(StringError::LoneSurrogate),
                0xD800..=0xDBFF => {
                    // A leading surrogate: a trailing one must follow, as `\uXXXX`.
                    let Some(after) = rest.strip_prefix(b"\\u") else {
                        return Err(StringError::UnexpectedEndOfHexEscape);
                    };
                    rest = after;
                    if !(0xDC00..=0xDFFF).contains(&hex4(&mut rest)?) {
                        return Err(StringError::LoneSurrogate);
                    }
                    4
                }
                0..=0x7F => 1,
                0x80..=0x7FF => 2,
                _ => 3,
            },
            _ => return Err(StringError::InvalidEscape),
        };
    }
    Ok(len + rest.len())
}

/// The number of elements of `raw`, a JSON array serde_json has already checked.
fn array_len(raw: &[u8]) -> usize {
    let (mut depth, mut commas, mut empty) = (0usize, 0usize, true);
    let (mut in_string, mut escaped) = (false, false);
    for &b in raw {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b' ' | b'\t' | b'\n' | b'\r' => continue,
            b']' | b'}' => depth -= 1,
            b',' if depth == 1 => commas += 1,
            _ => {
                if depth == 1 {
                    empty = false;
                }
                match b {
                    b'"' => in_string = true,
                    b'[' | b'{' => depth += 1,
                    _ => {}
                }
            }
        }
    }
    if empty {
        0
    } else {
        commas + 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measures_strings_and_counts_arrays() {
        let len = |json: &str| serde_json::from_str::<TextLen>(json).unwrap().get();
        assert_eq!(len(r#""héllo""#), 6);
        assert_eq!(len(r#""a\nb""#), 3);
        assert_eq!(len("null"), 0);
        assert_eq!(len("12"), 0);
        assert_eq!(len("-1.5e3"), 0);
        assert_eq!(len("true"), 0);
        assert_eq!(len(r#"{"a": "b"}"#), 0);
        assert_eq!(len(r#"[{"id": 1}, {"id": 2}]"#), 2);
        assert_eq!(len("[]"), 0);
        assert_eq!(len(" [ ] "), 0);
        assert_eq!(len(r#"[[1, 2], "a,]\"[", {"b": [3, 4]}, null]"#), 4);
        // Inside a struct, as the parsers use it.
        #[derive(serde::Deserialize)]
        struct Delta {
            content: TextLen,
        }
        let d: Delta = serde_json::from_slice(br#"{"content": "\u4f60\ud83d\ude00\n"}"#).unwrap();
        assert_eq!(d.content.get(), 3 + 4 + 1);
    }

    /// A deterministic corpus of JSON string literals: raw ASCII and multi-byte UTF-8, every
    /// simple escape, `\u` escapes across the BMP (both cases of hex), surrogate pairs, and
    /// mixtures of them, plus invalid escapes.
    fn corpus() -> Vec<String> {
        let mut out: Vec<String> = [
            "",
            "plain ascii",
            "héllo wörld",
            "你好世界",
            "😀🚀",
            r"\n",
            r#"\""#,
            r"\\",
            r"\/",
            r"\b\f\n\r\t",
            r"line\nline\nline\n",
            r"\u0000\u001f\u0020\u007f",
            r"\u0080\u07ff\u0800\uffff",
            r"\u00e9\u00E9\u4f60\u4F60",
            r"\ud800\udc00",
            r"\ud83d\ude00\ud83d\ude80",
            r"\uDBFF\uDFFF",
            r"a\u00e9b\nc\ud83d\ude00d你\t",
            // Invalid: lone surrogates, a broken pair, bad escapes, short or bad hex.
            r"\ud800",
            r"\ud800x",
            r"\ud800\n",
            r"\ud800\u0041",
            r"\ud800\ud800",
            r"\udc00",
            r"\udfff\ud800",
            r"ok\ud83d",
            r"\x",
            r"\a",
            r"\u12",
            r"\u12g4",
            r"\uZZZZ",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        // Every `\u` escape of the BMP outside the surrogates, in runs, and every simple escape.
        let mut run = String::new();
        for n in (0u32..0x1_0000).step_by(7) {
            if !(0xD800..0xE000).contains(&n) {
                run.push_str(&format!("\\u{n:04x}"));
            }
        }
        out.push(run);
        for c in ['"', '\\', '/', 'b', 'f', 'n', 'r', 't'] {
            out.push(format!("x\\{c}y"));
        }
        // Every surrogate pair with a leading surrogate in steps, mixed with raw UTF-8.
        for hi in (0xD800u32..0xDC00).step_by(61) {
            out.push(format!("é\\u{hi:04x}\\u{:04x}中", 0xDC00 + (hi & 0x3FF)));
        }
        out
    }

    #[test]
    fn lengths_and_errors_are_serde_jsons() {
        let without_position = |e: serde_json::Error| crate::message::without_position(&e);
        for body in corpus() {
            let json = format!("\"{body}\"");
            let ours = serde_json::from_str::<TextLen>(&json).map(TextLen::get);
            let theirs = serde_json::from_str::<String>(&json).map(|s| s.len());
            match (ours, theirs) {
                (Ok(a), Ok(b)) => assert_eq!(a, b, "{json}"),
                (Err(a), Err(b)) => {
                    assert_eq!(without_position(a), without_position(b), "{json}");
                }
                (a, b) => panic!("{json}: ours {a:?}, serde_json {b:?}"),
            }
        }
    }

    #[test]
    fn string_errors_are_recognised() {
        assert!(StringError::is_one("lone leading surrogate in hex escape"));
        assert!(!StringError::is_one("invalid type: string, expected u64"));
    }
}
