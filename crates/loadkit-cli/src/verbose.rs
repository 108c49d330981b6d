//! `-v`: one line per finished request on stderr, as an engine observer.
//!
//! Like the live line, the observer never writes itself (it runs on the collector): it hands
//! each line to a writer thread through a bounded channel. When stderr cannot keep up the lines
//! beyond the channel are counted, not queued, and the count is printed at the end, so a slow
//! terminal never delays the collector or grows memory.

use loadkit_core::{Control, Event, Observer, RequestRecord};

use crate::stderr::StderrLines;

/// Lines waiting for the writer before further ones are dropped (and counted).
const BACKLOG: usize = 4096;

/// Prints `#SEQ [user U] ok|failed|cancelled e2e … [ttft …] [N tokens] [: error]` per request
/// (tokens when there were any).
pub(crate) struct RequestLines {
    lines: StderrLines,
    dropped: u64,
}

impl RequestLines {
    pub(crate) fn new() -> Self {
        Self {
            lines: StderrLines::new("loadkit-verbose", BACKLOG, false),
            dropped: 0,
        }
    }
}

/// The line for one finished request (secrets redacted).
pub(crate) fn line(r: &RequestRecord) -> String {
    let ms = |d: std::time::Duration| d.as_secs_f64() * 1e3;
    let mut out = format!("#{}", r.seq);
    if let Some(user) = r.user {
        out.push_str(&format!(" user {user}"));
    }
    let outcome = match &r.error {
        None => "ok",
        Some(_) if r.is_cancelled() => "cancelled",
        Some(_) => "failed",
    };
    out.push_str(&format!(" {outcome} e2e {:.1} ms", ms(r.e2e())));
    if let Some(t) = r.ttft() {
        out.push_str(&format!(" ttft {:.1} ms", ms(t)));
    }
    // Requests without text (speech, uploads) have no tokens to count.
    let tokens = r.output_tokens_or_counted();
    if tokens > 0 || r.ttft().is_some() {
        out.push_str(&format!(" {tokens} tokens"));
    }
    if r.warmup {
        out.push_str(" (warm-up)");
    }
    if let Some(e) = &r.error {
        out.push_str(&format!(": [{}] {}", e.kind.class(), e.message));
    }
    crate::secret::redact(&out)
}

impl Observer for RequestLines {
    fn on_event(&mut self, event: &Event<'_>) -> Control {
        if let Event::RequestFinished(r) = event {
            if !self.lines.send(line(r)) {
                self.dropped += 1;
            }
        }
        Control::Continue
    }
}

impl Drop for RequestLines {
    fn drop(&mut self) {
        self.lines.finish();
        if self.dropped > 0 {
            eprintln!(
                "-v: {} request lines not printed (stderr could not keep up)",
                self.dropped
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_line_says_who_what_and_why() {
        let mut r = RequestRecord {
            seq: 7,
            user: Some(2),
            sent: Duration::from_millis(10),
            first_content: Some(Duration::from_millis(60)),
            end: Duration::from_millis(250),
            content_units: 5,
            ..RequestRecord::default()
        };
        assert_eq!(line(&r), "#7 user 2 ok e2e 240.0 ms ttft 50.0 ms 5 tokens");
        r.error = Some(loadkit_core::RequestError::http_status(
            503,
            "Too many concurrent requests",
        ));
        r.first_content = None;
        r.content_units = 0;
        assert_eq!(
            line(&r),
            "#7 user 2 failed e2e 240.0 ms: [http_status] HTTP 503: Too many concurrent requests"
        );
    }
}
