//! `NdjsonDecoder`: an incremental, bounded, zero-copy newline-delimited JSON line framer
//! (Ollama's streaming format), the sibling of [`SseDecoder`](crate::SseDecoder).
//!
//! Received frames are copied once into one reused buffer and lines are handed out as `&[u8]`
//! slices of it: no allocation per line. Lines end in `\n` (a `\r` before it is dropped); blank
//! lines are skipped. The decoder does not parse JSON: it only frames.

use bytes::{Buf, BytesMut};

use crate::frame::{utf8, FrameError};

/// An incremental line splitter: [`push`](Self::push) bytes as they arrive, then take every
/// complete line with [`next_line`](Self::next_line).
///
/// ```
/// use loadkit_sse::NdjsonDecoder;
///
/// let mut lines = NdjsonDecoder::new(1 << 20);
/// lines.push(b"{\"done\":false}\n{\"do");
/// assert_eq!(lines.next_line().unwrap(), Some(&b"{\"done\":false}"[..]));
/// assert_eq!(lines.next_line().unwrap(), None);
/// lines.push(b"ne\":true}\n");
/// assert_eq!(lines.next_line().unwrap(), Some(&b"{\"done\":true}"[..]));
/// ```
#[derive(Debug)]
pub struct NdjsonDecoder {
    buf: BytesMut,
    max: usize,
    /// Offset of the first byte not yet handed out.
    start: usize,
    /// Offset from which to look for the next `\n` (bytes before it have none).
    scan: usize,
    failed: Option<FrameError>,
}

impl NdjsonDecoder {
    /// A decoder that rejects lines longer than `max_line_size` bytes.
    pub fn new(max_line_size: usize) -> Self {
        Self {
            buf: BytesMut::with_capacity(512),
            max: max_line_size.max(1),
            start: 0,
            scan: 0,
            failed: None,
        }
    }

    /// Appends received bytes. Lines already handed out are released first; after an error
    /// nothing more is kept.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.failed.is_some() {
            return;
        }
        if self.start > 0 {
            if self.start == self.buf.len() {
                self.buf.clear();
            } else {
                self.buf.advance(self.start);
            }
            self.scan -= self.start;
            self.start = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes received but not yet handed out.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.start
    }

    /// The next complete non-blank line, without its line ending; `Ok(None)` when more bytes are
    /// needed. After an error the decoder is spent: every later call returns the same error.
    pub fn next_line(&mut self) -> Result<Option<&[u8]>, FrameError> {
        if let Some(e) = self.failed {
            return Err(e);
        }
        loop {
            let Some(i) = memchr::memchr(b'\n', &self.buf[self.scan..]) else {
                self.scan = self.buf.len();
                if self.buf.len() - self.start > self.max {
                    return Err(self.fail());
                }
                return Ok(None);
            };
            let line_start = self.start;
            let mut end = self.scan + i;
            self.start = end + 1;
            self.scan = self.start;
            if end > line_start && self.buf[end - 1] == b'\r' {
                end -= 1;
            }
            if end - line_start > self.max {
                return Err(self.fail());
            }
            if self.buf[line_start..end]
                .iter()
                .all(u8::is_ascii_whitespace)
            {
                continue;
            }
            return Ok(Some(&self.buf[line_start..end]));
        }
    }

    /// Like [`next_line`](Self::next_line), checked to be UTF-8.
    pub fn next_line_str(&mut self) -> Result<Option<&str>, FrameError> {
        match self.next_line()? {
            Some(line) => utf8(line).map(Some),
            None => Ok(None),
        }
    }

    /// At the end of the stream: the last line if it had no line ending (`None` if nothing but
    /// whitespace is left).
    pub fn finish(&mut self) -> Option<&[u8]> {
        if self.failed.is_some() {
            return None;
        }
        let rest = &self.buf[self.start..];
        self.start = self.buf.len();
        self.scan = self.start;
        let rest = rest.strip_suffix(b"\r").unwrap_or(rest);
        (!rest.iter().all(u8::is_ascii_whitespace)).then_some(rest)
    }

    fn fail(&mut self) -> FrameError {
        let e = FrameError::LineTooLarge { limit: self.max };
        self.failed = Some(e);
        e
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(chunks: &[&[u8]], max: usize) -> Vec<String> {
        let mut d = NdjsonDecoder::new(max);
        let mut out = Vec::new();
        for chunk in chunks {
            d.push(chunk);
            loop {
                match d.next_line() {
                    Ok(Some(line)) => out.push(String::from_utf8_lossy(line).into_owned()),
                    Ok(None) => break,
                    Err(e) => {
                        out.push(format!("error: {e}"));
                        return out;
                    }
                }
            }
        }
        if let Some(rest) = d.finish() {
            out.push(format!("finish {}", String::from_utf8_lossy(rest)));
        }
        out
    }

    fn check(chunks: &[&str], expect: &[&str]) {
        let chunks: Vec<&[u8]> = chunks.iter().map(|c| c.as_bytes()).collect();
        assert_eq!(decode(&chunks, 1024), expect);
        let all = chunks.concat();
        let bytes: Vec<&[u8]> = all.chunks(1).collect();
        assert_eq!(decode(&bytes, 1024), expect, "byte by byte");
    }

    #[test]
    fn lines() {
        check(&["{\"a\":1}\n{\"b\":2}\n"], &[r#"{"a":1}"#, r#"{"b":2}"#]);
        check(
            &["{\"a\"", ":1}\r\n\n  \n{\"b\":2}\r\n"],
            &[r#"{"a":1}"#, r#"{"b":2}"#],
        );
        check(
            &["{\"a\":1}\n{\"b\":2}"],
            &[r#"{"a":1}"#, r#"finish {"b":2}"#],
        );
        check(&["\n\n"], &[]);
    }

    #[test]
    fn oversized_lines_fail_with_bounded_memory() {
        assert_eq!(
            decode(&[&[b'x'; 100], b"\n"], 64),
            ["error: ndjson line exceeds the maximum size of 64 bytes"]
        );
        let long = [b'x'; 100];
        let mut d = NdjsonDecoder::new(64);
        d.push(&long[..40]);
        assert_eq!(d.next_line(), Ok(None));
        d.push(&long[40..]);
        assert_eq!(d.next_line(), Err(FrameError::LineTooLarge { limit: 64 }));
        assert_eq!(
            decode(&["0123456789\n".repeat(50).as_bytes()], 16).len(),
            50
        );
    }

    #[test]
    fn invalid_utf8() {
        let mut d = NdjsonDecoder::new(64);
        d.push(b"\xFF\n");
        assert_eq!(d.next_line_str(), Err(FrameError::InvalidUtf8));
    }

    #[test]
    fn ollama_samples_split_at_every_byte() {
        for (sample, count) in [
            (
                &include_bytes!("../testdata/wire-samples/ollama-api-proxy_chat_stream.txt")[..],
                6,
            ),
            (
                &include_bytes!("../testdata/wire-samples/ollama-api-proxy_generate_stream.txt")[..],
                6,
            ),
        ] {
            let at = sample.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
            let body = &sample[at..];
            let whole = decode(&[body], 4096);
            assert_eq!(whole.len(), count);
            assert!(
                whole.last().unwrap().contains("\"done\": true"),
                "{whole:?}"
            );
            for at in 0..=body.len() {
                let (a, b) = body.split_at(at);
                assert_eq!(decode(&[a, b], 4096), whole, "split at {at}");
            }
        }
    }
}
