//! The loadkit run report: the versioned JSON model that users' scripts and CI rely on, built
//! from a [`RunResult`](loadkit_core::RunResult), its terminal rendering, and the comparison of
//! runs.
//!
//! The JSON contract is in docs/metrics.md and DESIGN.md section 9: the top level is stable from
//! `schema_version: 1` on; fields may be added, none renamed. This crate is the only one whose
//! types are serde-stable. It never prints: renderers return strings (the terminal summary, and
//! the files of [`Format`]: a self-contained HTML page, GitHub Markdown, CSV).

mod compare;
mod consistency;
mod csv;
mod html;
mod markdown;
mod model;
mod plan;
mod raw;
mod section;
mod server;
mod slo;
mod sweep;
mod terminal;

pub use compare::{
    check_rules, compare, render_html as compare_html, render_markdown as compare_markdown,
    render_text as compare_text, Better, Cell, CompareOptions, Comparison, Estimate, FailRule, Row,
    RuleError, Side, Tripped, Verdict,
};
pub use consistency::{Check, Consistency};
pub use csv::{csv_field, errors_csv, summary_csv, timeline_csv};
pub use html::{escape, render_html};
pub use markdown::{escape_markdown, render_markdown};
pub use model::{
    ErrorRow, FirstRequestRow, Generator, Metric, MissedByReason, Report, RunInfo, RunMeta,
    Throughput, TimelineRow, Tokens, Totals, WarmupOutcomes, SCHEMA_VERSION,
};
pub use plan::{plan_chart, plan_csv};
pub use raw::raw_line;
pub use section::json_value;
pub use server::{ScrapeFailures, ServerMetrics, ServerSeries};
pub use slo::{evaluate as evaluate_slo, slo_lines, Slo, SloTarget};
pub use sweep::{sweep_header, sweep_row, sweep_summary};
pub use terminal::render_summary;

/// Why a report could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// The file is not valid report JSON.
    #[error("not a loadkit report: {0}")]
    Json(#[from] serde_json::Error),
    /// The report's schema is newer than this build understands.
    #[error("report schema_version {0} is newer than this loadkit understands ({SCHEMA_VERSION})")]
    Schema(u32),
    /// A chart could not be drawn.
    #[error("could not draw a chart: {0}")]
    Chart(String),
    /// A report format this build does not write.
    #[error("unknown report format '{0}' (use json, html, md or csv)")]
    UnknownFormat(String),
}

/// A file format a report is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Format {
    /// `report.json`, the versioned model (always written by a run).
    Json,
    /// `report.html`: one self-contained page with charts, no JavaScript, nothing remote.
    Html,
    /// `report.md`: GitHub Markdown for a pull request.
    Markdown,
    /// `summary.csv`, `timeline.csv` and `errors.csv`.
    Csv,
}

impl Format {
    /// Every format, in the order files are written.
    pub const ALL: [Format; 4] = [Format::Json, Format::Html, Format::Markdown, Format::Csv];

    /// The name users type (`json`, `html`, `md`, `csv`).
    pub fn name(self) -> &'static str {
        match self {
            Format::Json => "json",
            Format::Html => "html",
            Format::Markdown => "md",
            Format::Csv => "csv",
        }
    }

    /// A comma-separated list (`html,md`), duplicates removed, sorted in [`Format::ALL`]'s
    /// order; `markdown` is accepted for `md`.
    pub fn parse_list(text: &str) -> Result<Vec<Format>, ReportError> {
        let mut formats = Vec::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let format = match part.to_ascii_lowercase().as_str() {
                "json" => Format::Json,
                "html" => Format::Html,
                "md" | "markdown" => Format::Markdown,
                "csv" => Format::Csv,
                _ => return Err(ReportError::UnknownFormat(part.to_owned())),
            };
            formats.push(format);
        }
        if formats.is_empty() {
            return Err(ReportError::UnknownFormat(text.to_owned()));
        }
        formats.sort();
        formats.dedup();
        Ok(formats)
    }

    /// The files `report` is written as in this format: (file name, contents).
    pub fn render(self, report: &Report) -> Result<Vec<(&'static str, String)>, ReportError> {
        Ok(match self {
            Format::Json => vec![("report.json", report.to_json())],
            Format::Html => vec![("report.html", render_html(report)?)],
            Format::Markdown => vec![("report.md", render_markdown(report))],
            Format::Csv => vec![
                ("summary.csv", summary_csv(report)),
                ("timeline.csv", timeline_csv(report)),
                ("errors.csv", errors_csv(report)),
            ],
        })
    }
}

#[cfg(test)]
mod fixture {
    //! A report with every part filled, and hostile strings where servers and users write.

    use std::collections::BTreeMap;

    use loadkit_core::metrics::Histogram;
    use serde_json::json;

    use crate::*;

    pub(crate) fn report() -> Report {
        let mut h = Histogram::new();
        for ms in 1..=100u64 {
            h.record_value(ms * 1_000_000);
        }
        let mut metrics = BTreeMap::new();
        for name in ["ttft", "itl", "e2e", "schedule_lag"] {
            metrics.insert(name.to_owned(), Metric::from_histogram_ms(&h));
        }
        metrics.insert(
            "tpot".to_owned(),
            Metric::from_histogram_ms(&Histogram::new()),
        );
        let timeline = (0..10u64)
            .map(|t| {
                let spike = (3..5).contains(&t);
                TimelineRow {
                    t_s: t,
                    intended: if spike { 50 } else { 5 },
                    started: if spike { 48 } else { 5 },
                    completed: if t == 0 { 0 } else { 5 },
                    failed: u64::from(t == 4) * 3,
                    failed_by_class: if t == 4 {
                        [("http_status".to_owned(), 2), ("timeout".to_owned(), 1)].into()
                    } else {
                        Default::default()
                    },
                    in_flight: if spike { 20 } else { 2 },
                    output_tokens: 160,
                    ttft_p50: (t > 0).then_some(50.0 + t as f64),
                    e2e_p95: (t > 0).then_some(360.0),
                    server: [
                        ("vllm:num_requests_running".to_owned(), 4.0),
                        (
                            "vllm:num_requests_waiting".to_owned(),
                            if spike { 16.0 } else { 0.0 },
                        ),
                    ]
                    .into(),
                }
            })
            .collect();
        let sections = json!({
            "tts": {
                "listeners": 3,
                "voice": "<b>bold voice</b>",
                "blocks": {"sent": 30, "played": 29},
                "steps": [{"words": 128, "ok": true}, {"words": 256, "ok": false}],
            }
        });
        let mut report = Report {
            schema_version: SCHEMA_VERSION,
            loadkit_version: "0.1.0".to_owned(),
            run: RunInfo {
                protocol: "openai-chat".to_owned(),
                target: "http://127.0.0.1:9/v1/chat/completions?q=a&b=<i>".to_owned(),
                model: Some("m'1".to_owned()),
                pattern: json!({"kind": "spike", "loop": "open", "rps": 5.0})
                    .as_object()
                    .unwrap()
                    .clone(),
                started_at: "2026-12-03T12:00:00.000Z".to_owned(),
                duration_s: 10.0,
                elapsed_s: 10.4,
                warmup_s: 0.0,
                stop_reason: "duration".to_owned(),
                interrupted: false,
                checkpoint: false,
                seed: Some(42),
                settings: json!({"max_tokens": 128}).as_object().unwrap().clone(),
            },
            totals: Totals {
                requests: 100,
                succeeded: 97,
                failed: 3,
                missed: 0,
                missed_by_reason: MissedByReason::default(),
                succeeded_with_content: 97,
                stale_connection_retries: 0,
                cancelled: 0,
                in_flight: 0,
                queued_late: 0,
                overruns: 0,
                warmup: 0,
                retry_after_waits: 0,
                retry_after_wait_s: 0.0,
                warmup_outcomes: WarmupOutcomes::default(),
            },
            throughput: Throughput {
                requests_per_s: 9.7,
                output_tokens_per_s: 310.4,
                input_tokens_per_s: 0.0,
            },
            tokens: Tokens {
                input_total: 0,
                output_total: 3104,
                source: "server".to_owned(),
            },
            metrics,
            errors: vec![
                ErrorRow {
                    class: "http_status".to_owned(),
                    message: "<script>alert(1)</script>".to_owned(),
                    count: 2,
                },
                ErrorRow {
                    class: "protocol".to_owned(),
                    message: "bad \"chunk\", at 3 | `x`".to_owned(),
                    count: 1,
                },
            ],
            timeline,
            generator: Generator {
                lag_p99_ms: 0.2,
                missed: 0,
                limited: false,
                limited_reason: None,
                cpu_s: Some(0.4),
                cpu_utilization: Some(0.02),
                peak_rss_mib: Some(15.5),
                content_events: 3104,
                bytes: 100_000,
            },
            consistency: Consistency::default(),
            first_request: None,
            slo: None,
            server_metrics: Some(ServerMetrics {
                kind: "vllm".to_owned(),
                url: "http://127.0.0.1:9/metrics".to_owned(),
                interval_s: 1.0,
                scrapes: 11,
                failures: ScrapeFailures {
                    count: 1,
                    first_error: Some("no response within 1s".to_owned()),
                },
                rejected_lines: 0,
                first_rejected: None,
                missing: vec!["vllm:request_queue_time_seconds".to_owned()],
                series: [
                    ("vllm:num_requests_running", "running", 4.0, 4.0, 4.0),
                    ("vllm:num_requests_waiting", "waiting", 0.0, 3.2, 16.0),
                ]
                .into_iter()
                .map(|(key, role, min, mean, max)| {
                    let series = ServerSeries {
                        role: role.to_owned(),
                        source: key.to_owned(),
                        read: "gauge".to_owned(),
                        unit: "requests".to_owned(),
                        samples: 10,
                        min: Some(min),
                        mean: Some(mean),
                        max: Some(max),
                    };
                    (key.to_owned(), series)
                })
                .collect(),
            }),
            sections: sections.as_object().unwrap().clone(),
            section_summaries: BTreeMap::new(),
        };
        report.consistency = Consistency::check(&report);
        report
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_lists_parse_and_name_their_files() {
        assert_eq!(
            Format::parse_list("csv, html,md,html").unwrap(),
            [Format::Html, Format::Markdown, Format::Csv]
        );
        let err = Format::parse_list("html,pdf").unwrap_err().to_string();
        assert!(err.contains("'pdf'"), "{err}");
        assert!(Format::parse_list(" , ").is_err());
        let report = fixture::report();
        let names: Vec<&str> = Format::ALL
            .iter()
            .flat_map(|f| f.render(&report).unwrap())
            .map(|(name, _)| name)
            .collect();
        assert_eq!(
            names,
            [
                "report.json",
                "report.html",
                "report.md",
                "summary.csv",
                "timeline.csv",
                "errors.csv"
            ]
        );
    }
}
