//! The report as CSV, for spreadsheets and scripts (RFC 4180 quoting):
//!
//! - `summary.csv`: header `name,unit,count,mean,min,p50,p90,p95,p99,max,value`. One row per
//!   metric (`value` empty), then one row per scalar of the run, totals, throughput, tokens and
//!   generator sections, named `section.field` (`totals.requests`, `throughput.requests_per_s`,
//!   `run.target`), with only `unit` and `value` filled. Every row has the same columns, so the
//!   file loads as one table.
//! - `timeline.csv`: the timeline, one row per second:
//!   `t_s,intended,started,completed,failed,in_flight,output_tokens,ttft_p50_ms,e2e_p95_ms`,
//!   then `server:KEY` per series the server's `/metrics` gave (`--server-metrics`).
//! - `errors.csv`: `class,message,count`, the grouped errors.
//!
//! Empty cells are missing values (a statistic of no values, a second with no completion).

use std::fmt::Write as _;

use crate::Report;

/// `field` as one CSV field: quoted (inner quotes doubled) when it holds a comma, a quote, a
/// line break or leading/trailing space.
pub fn csv_field(field: &str) -> String {
    let needs =
        field.contains([',', '"', '\n', '\r']) || field.starts_with(' ') || field.ends_with(' ');
    if needs {
        format!("\"{}\"", field.replace('"', "\"\""))
    } else {
        field.to_owned()
    }
}

fn opt(x: Option<f64>) -> String {
    x.map(|x| x.to_string()).unwrap_or_default()
}

/// `summary.csv` (see the module documentation for its columns).
pub fn summary_csv(report: &Report) -> String {
    let mut out = String::from("name,unit,count,mean,min,p50,p90,p95,p99,max,value\n");
    for (name, m) in &report.metrics {
        let _ = writeln!(
            out,
            "{},{},{},{},{},{},{},{},{},{},",
            csv_field(name),
            csv_field(&m.unit),
            m.count,
            opt(m.mean),
            opt(m.min),
            opt(m.p50),
            opt(m.p90),
            opt(m.p95),
            opt(m.p99),
            opt(m.max)
        );
    }
    let run = &report.run;
    let t = &report.totals;
    let tp = &report.throughput;
    let g = &report.generator;
    let mut scalar = |name: &str, unit: &str, value: String| {
        let _ = writeln!(
            out,
            "{},{},,,,,,,,,{}",
            csv_field(name),
            csv_field(unit),
            csv_field(&value)
        );
    };
    scalar("run.protocol", "text", run.protocol.clone());
    scalar("run.target", "text", run.target.clone());
    scalar("run.model", "text", run.model.clone().unwrap_or_default());
    scalar("run.started_at", "text", run.started_at.clone());
    scalar("run.stop_reason", "text", run.stop_reason.clone());
    scalar("run.duration_s", "s", run.duration_s.to_string());
    scalar("run.elapsed_s", "s", run.elapsed_s.to_string());
    scalar("totals.requests", "count", t.requests.to_string());
    scalar("totals.succeeded", "count", t.succeeded.to_string());
    scalar("totals.failed", "count", t.failed.to_string());
    scalar("totals.missed", "count", t.missed.to_string());
    scalar("totals.cancelled", "count", t.cancelled.to_string());
    scalar("totals.warmup", "count", t.warmup.to_string());
    scalar(
        "throughput.requests_per_s",
        "per_s",
        tp.requests_per_s.to_string(),
    );
    scalar(
        "throughput.output_tokens_per_s",
        "per_s",
        tp.output_tokens_per_s.to_string(),
    );
    scalar(
        "throughput.input_tokens_per_s",
        "per_s",
        tp.input_tokens_per_s.to_string(),
    );
    scalar(
        "tokens.output_total",
        "tokens",
        report.tokens.output_total.to_string(),
    );
    scalar(
        "tokens.input_total",
        "tokens",
        report.tokens.input_total.to_string(),
    );
    scalar("tokens.source", "text", report.tokens.source.clone());
    scalar("generator.lag_p99_ms", "ms", g.lag_p99_ms.to_string());
    scalar("generator.limited", "bool", g.limited.to_string());
    if let Some(slo) = &report.slo {
        scalar("slo.passed", "bool", slo.passed.to_string());
        for t in &slo.targets {
            scalar(
                &format!("slo.{}", t.expr),
                if t.passed { "pass" } else { "fail" },
                t.observed.map(|v| v.to_string()).unwrap_or_default(),
            );
        }
        if let Some(per_s) = slo.goodput_per_s {
            scalar("slo.goodput_per_s", "req/s", per_s.to_string());
        }
        if let Some(ratio) = slo.goodput_ratio {
            scalar("slo.goodput_ratio", "ratio", ratio.to_string());
        }
    }
    out
}

/// `timeline.csv`: one row per second of the run; with `--server-metrics`, one more column per
/// server series (`server:` and its key), empty in seconds without a scrape.
pub fn timeline_csv(report: &Report) -> String {
    let keys: Vec<&String> = report
        .server_metrics
        .iter()
        .flat_map(|s| s.series.keys())
        .collect();
    let mut out = String::from(
        "t_s,intended,started,completed,failed,in_flight,output_tokens,ttft_p50_ms,e2e_p95_ms",
    );
    for key in &keys {
        out.push(',');
        out.push_str(&csv_field(&format!("server:{key}")));
    }
    out.push('\n');
    for r in &report.timeline {
        let _ = write!(
            out,
            "{},{},{},{},{},{},{},{},{}",
            r.t_s,
            r.intended,
            r.started,
            r.completed,
            r.failed,
            r.in_flight,
            r.output_tokens,
            opt(r.ttft_p50),
            opt(r.e2e_p95)
        );
        for key in &keys {
            let _ = write!(out, ",{}", opt(r.server.get(*key).copied()));
        }
        out.push('\n');
    }
    out
}

/// `errors.csv`: the grouped errors, most frequent first.
pub fn errors_csv(report: &Report) -> String {
    let mut out = String::from("class,message,count\n");
    for e in &report.errors {
        let _ = writeln!(
            out,
            "{},{},{}",
            csv_field(&e.class),
            csv_field(&e.message),
            e.count
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixture;

    /// A minimal RFC 4180 reader, to check that what is written reads back.
    fn parse(text: &str) -> Vec<Vec<String>> {
        let mut rows = Vec::new();
        let mut row = Vec::new();
        let mut field = String::new();
        let mut quoted = false;
        let mut chars = text.chars().peekable();
        while let Some(c) = chars.next() {
            match (quoted, c) {
                (true, '"') if chars.peek() == Some(&'"') => {
                    chars.next();
                    field.push('"');
                }
                (true, '"') => quoted = false,
                (true, c) => field.push(c),
                (false, '"') => quoted = true,
                (false, ',') => row.push(std::mem::take(&mut field)),
                (false, '\n') => {
                    row.push(std::mem::take(&mut field));
                    rows.push(std::mem::take(&mut row));
                }
                (false, c) => field.push(c),
            }
        }
        rows
    }

    #[test]
    fn a_message_with_a_comma_and_a_quote_is_quoted() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a, \"b\""), "\"a, \"\"b\"\"\"");
        let csv = errors_csv(&fixture::report());
        assert!(
            csv.contains("protocol,\"bad \"\"chunk\"\", at 3 | `x`\",1\n"),
            "{csv}"
        );
        let rows = parse(&csv);
        assert_eq!(rows[0], ["class", "message", "count"]);
        assert_eq!(rows[2][1], "bad \"chunk\", at 3 | `x`");
        assert!(rows.iter().all(|r| r.len() == 3), "{rows:?}");
    }

    #[test]
    fn every_summary_row_has_the_header_s_columns() {
        let report = fixture::report();
        let rows = parse(&summary_csv(&report));
        assert!(rows.iter().all(|r| r.len() == 11), "{rows:?}");
        let ttft = rows.iter().find(|r| r[0] == "ttft").unwrap();
        assert_eq!((ttft[1].as_str(), ttft[2].as_str()), ("ms", "100"));
        assert!(ttft[10].is_empty());
        // tpot has no values: empty cells, not zeros.
        let tpot = rows.iter().find(|r| r[0] == "tpot").unwrap();
        assert!(tpot[3..10].iter().all(String::is_empty), "{tpot:?}");
        let target = rows.iter().find(|r| r[0] == "run.target").unwrap();
        assert_eq!(target[10], report.run.target);
        let requests = rows.iter().find(|r| r[0] == "totals.requests").unwrap();
        assert_eq!(requests[10], report.totals.requests.to_string());
    }

    #[test]
    fn the_timeline_has_a_row_per_second() {
        let report = fixture::report();
        let rows = parse(&timeline_csv(&report));
        assert_eq!(rows.len(), report.timeline.len() + 1);
        assert_eq!(rows[4][1], report.timeline[3].intended.to_string());
        assert_eq!(rows[0][9], "server:vllm:num_requests_running");
        assert_eq!(rows[0][10], "server:vllm:num_requests_waiting");
        assert_eq!(rows[4][10], "16", "second 3 of the spike");
        // A second without completions has no TTFT: an empty cell.
        assert!(rows[1][7].is_empty(), "{:?}", rows[1]);
    }
}
