//! Raw records (`--raw requests.jsonl`): one JSON line per finished request, its milestones as
//! milliseconds from the run's start (`run.started_at` in report.json).

use std::io::Write as _;
use std::time::Duration;

use loadkit_core::metrics::ErrorKind;
use loadkit_core::RequestRecord;
use serde::Serialize;

/// One line of the raw records file.
#[derive(Debug, Serialize)]
struct Line<'a> {
    seq: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    user: Option<u32>,
    warmup: bool,
    /// The intended start.
    scheduled_ms: f64,
    sent_ms: f64,
    first_byte_ms: Option<f64>,
    first_token_ms: Option<f64>,
    end_ms: f64,
    /// `ok`, `failed` or `cancelled`.
    status: &'static str,
    /// The HTTP status of an `http_status` failure.
    #[serde(skip_serializing_if = "Option::is_none")]
    http_status: Option<u16>,
    error_class: Option<&'static str>,
    error: Option<&'a str>,
    output_tokens: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    input_tokens: Option<u64>,
}

fn ms(d: Duration) -> f64 {
    (d.as_nanos() as f64 / 1e3).round() / 1e3
}

/// Appends `record`'s line (with its newline) to `out`.
pub fn raw_line(record: &RequestRecord, out: &mut Vec<u8>) {
    let (status, http_status, class, message) = match &record.error {
        None => ("ok", None, None, None),
        Some(e) => (
            if record.is_cancelled() {
                "cancelled"
            } else {
                "failed"
            },
            match e.kind {
                ErrorKind::HttpStatus(code) => Some(code),
                _ => None,
            },
            Some(e.kind.class()),
            Some(e.message.as_str()),
        ),
    };
    let line = Line {
        seq: record.seq,
        user: record.user,
        warmup: record.warmup,
        scheduled_ms: ms(record.scheduled),
        sent_ms: ms(record.sent),
        first_byte_ms: record.first_byte.map(ms),
        first_token_ms: record.first_content.map(ms),
        end_ms: ms(record.end),
        status,
        http_status,
        error_class: class,
        error: message,
        output_tokens: record.output_tokens_or_counted(),
        input_tokens: record.input_tokens,
    };
    // Writing into a Vec cannot fail, and the line has no map with non-string keys.
    let _ = serde_json::to_writer(&mut *out, &line);
    let _ = out.write_all(b"\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_carries_every_milestone_and_the_error() {
        let mut r = RequestRecord {
            seq: 7,
            scheduled: Duration::from_millis(100),
            sent: Duration::from_micros(100_250),
            first_byte: Some(Duration::from_millis(130)),
            first_content: Some(Duration::from_millis(150)),
            end: Duration::from_millis(400),
            content_units: 12,
            ..RequestRecord::default()
        };
        let mut out = Vec::new();
        raw_line(&r, &mut out);
        r.seq = 8;
        r.error = Some(loadkit_core::RequestError::http_status(
            429,
            "slow \"down\"",
        ));
        raw_line(&r, &mut out);
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["sent_ms"], 100.25);
        assert_eq!(lines[0]["first_token_ms"], 150.0);
        assert_eq!(lines[0]["status"], "ok");
        assert_eq!(lines[0]["output_tokens"], 12);
        assert_eq!(lines[1]["status"], "failed");
        assert_eq!(lines[1]["http_status"], 429);
        assert_eq!(lines[1]["error_class"], "http_status");
        assert_eq!(lines[1]["error"], "HTTP 429: slow \"down\"");
    }
}
