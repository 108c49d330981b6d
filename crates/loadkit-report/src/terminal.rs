//! The end-of-run summary table for terminals (plain text, no colours, 80 columns).

use std::fmt::Write as _;

use crate::{Metric, Report};

/// Rows of the latency table: (label, metric name).
const ROWS: [(&str, &str); 6] = [
    ("TTFT", "ttft"),
    ("TTFT from sched", "ttft_corrected"),
    ("ITL", "itl"),
    ("TPOT", "tpot"),
    ("E2E", "e2e"),
    ("E2E from sched", "e2e_corrected"),
];

/// Renders the final summary: requests, success rate, throughput, the latency table
/// (p50 / p90 / p95 / p99 / max in ms), grouped errors and the generator's health.
pub fn render_summary(report: &Report) -> String {
    let mut out = String::new();
    let run = &report.run;
    let t = &report.totals;
    let _ = writeln!(
        out,
        "loadkit {} · {} · {}",
        report.loadkit_version, run.protocol, run.target
    );
    let kind = run
        .pattern
        .get("kind")
        .and_then(|v| v.as_str())
        .unwrap_or("?");
    let params: Vec<String> = run
        .pattern
        .iter()
        .filter(|(k, _)| *k != "kind" && *k != "loop")
        .map(|(k, v)| {
            format!(
                "{k}={}",
                v.as_str().map_or_else(|| v.to_string(), str::to_owned)
            )
        })
        .collect();
    let _ = writeln!(
        out,
        "pattern {kind} ({} loop) {} · {:.1} s measured{} · stopped: {}{}",
        run.pattern
            .get("loop")
            .and_then(|v| v.as_str())
            .unwrap_or("?"),
        params.join(" "),
        run.duration_s,
        if run.warmup_s > 0.0 {
            format!(" after {:.1} s warm-up", run.warmup_s)
        } else {
            String::new()
        },
        run.stop_reason,
        if run.checkpoint {
            " (checkpoint of a run still going)"
        } else if run.interrupted {
            " (interrupted)"
        } else {
            ""
        },
    );
    out.push('\n');
    let _ = writeln!(
        out,
        "Requests    {} sent · {} ok · {} failed ({:.1} % success){}{}",
        t.requests,
        t.succeeded,
        t.failed,
        report.success_ratio() * 100.0,
        if t.missed > 0 {
            format!(" · {} never started", t.missed)
        } else {
            String::new()
        },
        if t.cancelled > 0 {
            format!(" · {} cancelled", t.cancelled)
        } else {
            String::new()
        },
    );
    if t.missed > 0 {
        let _ = writeln!(out, "{}", unsent_line(t));
    }
    if t.stale_connection_retries > 0 {
        let _ = writeln!(
            out,
            "Retries     {} sent again on a new connection after the server had closed a reused \
             keep-alive connection (not failures; latency includes the retry)",
            t.stale_connection_retries
        );
    }
    let tp = &report.throughput;
    // A protocol without text content (speech) has no tokens to show.
    let textless = report.generator.content_events == 0 && report.tokens.output_total == 0;
    if textless {
        let _ = writeln!(out, "Throughput  {:.2} req/s", tp.requests_per_s);
    } else {
        let _ = writeln!(
            out,
            "Throughput  {:.2} req/s · {:.1} output tok/s · {} output tokens ({})",
            tp.requests_per_s,
            tp.output_tokens_per_s,
            report.tokens.output_total,
            report.tokens.source,
        );
    }
    if let Some(e2e) = report.metrics.get("e2e").filter(|m| m.count > 0) {
        let v = |x: Option<f64>| x.map_or_else(|| "–".to_owned(), |x| format!("{x:.0}"));
        let _ = writeln!(
            out,
            "Duration    avg {} · min {} · max {} · p50 {} · p95 {} ms (successful) · wall {:.1} s",
            v(e2e.mean),
            v(e2e.min),
            v(e2e.max),
            v(e2e.p50),
            v(e2e.p95),
            run.elapsed_s,
        );
    }
    out.push('\n');
    let _ = writeln!(
        out,
        "{:<20}{:>10}{:>10}{:>10}{:>10}{:>10}",
        "ms", "p50", "p90", "p95", "p99", "max"
    );
    let any_success = t.succeeded > 0;
    for (label, name) in ROWS {
        let Some(m) = report.metrics.get(name) else {
            continue;
        };
        // An empty row is still shown when requests succeeded (TPOT of one-chunk answers is
        // "–": not measurable, not zero).
        if m.count == 0 && (!any_success || (textless && !name.starts_with("e2e"))) {
            continue;
        }
        let _ = writeln!(
            out,
            "{label:<20}{}{}{}{}{}",
            cell(m, |m| m.p50),
            cell(m, |m| m.p90),
            cell(m, |m| m.p95),
            cell(m, |m| m.p99),
            cell(m, |m| m.max)
        );
    }
    // Every other millisecond metric (server timings, spans such as tool rounds), by name.
    for (name, m) in &report.metrics {
        let standard = ROWS.iter().any(|(_, n)| n == name) || name == "schedule_lag";
        if standard || m.unit != "ms" || m.count == 0 {
            continue;
        }
        let _ = writeln!(
            out,
            "{name:<20}{}{}{}{}{}",
            cell(m, |m| m.p50),
            cell(m, |m| m.p90),
            cell(m, |m| m.p95),
            cell(m, |m| m.p99),
            cell(m, |m| m.max)
        );
    }
    // Ratio metrics (real-time factors), by name.
    for (name, m) in &report.metrics {
        if m.unit != "ratio" || m.count == 0 {
            continue;
        }
        let r = |v: Option<f64>| v.map_or_else(|| format!("{:>10}", "–"), |v| format!("{v:>10.3}"));
        let _ = writeln!(
            out,
            "{name:<20}{}{}{}{}{}  (ratio)",
            r(m.p50),
            r(m.p90),
            r(m.p95),
            r(m.p99),
            r(m.max)
        );
    }
    if let Some(first) = &report.first_request {
        let ttft = first
            .ttft_ms
            .map(|t| format!(" · TTFT {t:.0} ms"))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "First request  {:.0} ms{ttft} ({}{}; a cold server's model load shows here)",
            first.first_request_ms,
            if first.succeeded { "ok" } else { "failed" },
            if first.warmup { ", warm-up" } else { "" }
        );
    }
    // Protocol sections (ollama, tools, ...): their own summary lines, or their scalar fields
    // on one line each.
    for (section, value) in &report.sections {
        if let Some(lines) = report.section_summaries.get(section) {
            for (i, line) in lines.iter().enumerate() {
                let label = if i == 0 { section.as_str() } else { "" };
                let _ = writeln!(out, "{label:<12}{line}");
            }
            continue;
        }
        let Some(fields) = value.as_object() else {
            continue;
        };
        let scalars: Vec<String> = fields
            .iter()
            .filter(|(_, v)| !v.is_object() && !v.is_array())
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        if !scalars.is_empty() {
            let _ = writeln!(out, "{section:<12}{}", scalars.join(" · "));
        }
    }
    if let Some(server) = &report.server_metrics {
        for (i, line) in server.lines().iter().enumerate() {
            let label = if i == 0 { "server" } else { "" };
            let _ = writeln!(out, "{label:<12}{line}");
        }
    }
    if let Some(slo) = &report.slo {
        let _ = writeln!(
            out,
            "\nSLO         {}",
            if slo.passed { "passed" } else { "FAILED" }
        );
        for line in crate::slo_lines(slo) {
            let _ = writeln!(out, "  {line}");
        }
    }
    if !report.errors.is_empty() {
        out.push_str("\nErrors\n");
        for e in &report.errors {
            let _ = writeln!(out, "  [{}x] {}", e.count, e.message);
        }
    }
    let g = &report.generator;
    let _ = write!(out, "\nGenerator   schedule lag p99 {:.2} ms", g.lag_p99_ms);
    if t.queued_late > 0 {
        let _ = write!(out, " · {} queued at the in-flight cap", t.queued_late);
    }
    if t.overruns > 0 {
        let _ = write!(out, " · {} interval overruns", t.overruns);
    }
    if let Some(cpu) = g.cpu_s {
        let _ = write!(out, " · client CPU {cpu:.2} s");
    }
    if let Some(rss) = g.peak_rss_mib {
        let _ = write!(out, " · peak RSS {rss:.1} MiB");
    }
    out.push('\n');
    if g.limited {
        let _ =
            writeln!(
            out,
            "WARNING     generator-limited: {}; latencies include client-side delay (lower the \
             rate, or add threads or shards)",
            g.limited_reason.as_deref().unwrap_or("schedule lag p99 > 10 ms")
        );
    }
    for check in report.consistency.failures() {
        let _ = writeln!(
            out,
            "WARNING     consistency check {} failed: {}",
            check.name, check.detail
        );
    }
    out
}

/// One line on the arrivals that never started, with their reasons.
fn unsent_line(t: &crate::Totals) -> String {
    let m = &t.missed_by_reason;
    let mut why = Vec::new();
    if m.queued_at_stop > 0 {
        why.push(format!(
            "{} still queued at the in-flight cap when the run stopped",
            m.queued_at_stop
        ));
    }
    if m.dropped_at_cap > 0 {
        why.push(format!("{} dropped at the in-flight cap", m.dropped_at_cap));
    }
    if m.skipped_slot > 0 {
        why.push(format!(
            "{} interval slots skipped by overruns",
            m.skipped_slot
        ));
    }
    format!(
        "Unsent      {} arrivals never started: {}",
        t.missed,
        why.join(", ")
    )
}

fn cell(m: &Metric, pick: impl Fn(&Metric) -> Option<f64>) -> String {
    match pick(m) {
        Some(v) if v >= 1000.0 => format!("{v:>10.0}"),
        Some(v) => format!("{v:>10.2}"),
        None => format!("{:>10}", "–"),
    }
}
