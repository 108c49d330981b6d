//! The report as GitHub Markdown, ready to paste into a pull request: the summary, the metrics
//! table, grouped errors and protocol sections. Server and user text is escaped so it cannot
//! break a table or become markup.

use std::fmt::Write as _;

use serde_json::Value;

use crate::Report;

/// `text` safe in a GitHub Markdown table cell: `|`, backticks, `\\`, link brackets and
/// emphasis marks escaped, `<` and `>` as entities (GitHub would otherwise keep some HTML), `&`
/// too, and line breaks (Unicode's included) as spaces.
pub fn escape_markdown(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '|' => out.push_str("\\|"),
            '`' => out.push_str("\\`"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '\\' => out.push_str("\\\\"),
            // Link and image syntax: `[text](url)` from a server must not become a link.
            '[' => out.push_str("\\["),
            ']' => out.push_str("\\]"),
            // Emphasis and strike-through: a server cannot restyle the table.
            '*' => out.push_str("\\*"),
            '~' => out.push_str("\\~"),
            '\r' | '\n' | '\u{2028}' | '\u{2029}' | '\u{85}' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

fn opt(x: Option<f64>) -> String {
    x.map_or_else(|| "–".to_owned(), |x| format!("{x:.2}"))
}

/// Renders `report` as GitHub Markdown.
pub fn render_markdown(report: &Report) -> String {
    let run = &report.run;
    let t = &report.totals;
    let tp = &report.throughput;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "### loadkit: {} · {}\n",
        escape_markdown(&run.protocol),
        escape_markdown(&run.target)
    );
    let kind = run
        .pattern
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or("?");
    let _ = writeln!(
        out,
        "Pattern **{}**{} · {:.1} s measured · stopped: {}{} · started {} · loadkit {}\n",
        escape_markdown(kind),
        run.model
            .as_deref()
            .map(|m| format!(" · model `{}`", escape_markdown(m)))
            .unwrap_or_default(),
        run.duration_s,
        escape_markdown(&run.stop_reason),
        if run.interrupted {
            " (interrupted)"
        } else {
            ""
        },
        escape_markdown(&run.started_at),
        escape_markdown(&report.loadkit_version),
    );
    out.push_str("| | |\n|---|---:|\n");
    let rows: [(&str, String); 9] = [
        ("requests sent", t.requests.to_string()),
        ("succeeded", t.succeeded.to_string()),
        ("failed", t.failed.to_string()),
        (
            "success",
            format!("{:.1} %", report.success_ratio() * 100.0),
        ),
        ("never started", t.missed.to_string()),
        ("throughput", format!("{:.2} req/s", tp.requests_per_s)),
        (
            "output tokens",
            format!(
                "{} ({:.1} tok/s, {})",
                report.tokens.output_total,
                tp.output_tokens_per_s,
                escape_markdown(&report.tokens.source)
            ),
        ),
        ("input tokens", report.tokens.input_total.to_string()),
        (
            "schedule lag p99",
            format!("{:.2} ms", report.generator.lag_p99_ms),
        ),
    ];
    for (k, v) in rows {
        let _ = writeln!(out, "| {k} | {v} |");
    }
    if report.generator.limited {
        let _ = writeln!(
            out,
            "\n> **Generator-limited:** {}",
            escape_markdown(report.generator.limited_reason.as_deref().unwrap_or(""))
        );
    }
    for check in report.consistency.failures() {
        let _ = writeln!(
            out,
            "\n> **Consistency check {} failed:** {}",
            escape_markdown(&check.name),
            escape_markdown(&check.detail)
        );
    }

    out.push_str("\n| metric | unit | count | p50 | p90 | p95 | p99 | max |\n");
    out.push_str("|---|---|---:|---:|---:|---:|---:|---:|\n");
    for (name, m) in report.metrics.iter().filter(|(_, m)| m.count > 0) {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            escape_markdown(name),
            escape_markdown(&m.unit),
            m.count,
            opt(m.p50),
            opt(m.p90),
            opt(m.p95),
            opt(m.p99),
            opt(m.max)
        );
    }

    if let Some(slo) = &report.slo {
        let _ = writeln!(
            out,
            "\n**SLO {}**\n\n| target | result | observed |\n|---|---|---|",
            if slo.passed { "passed" } else { "failed" }
        );
        for t in &slo.targets {
            let _ = writeln!(
                out,
                "| {} | {} | {} |",
                escape_markdown(&t.expr),
                if t.passed { "pass" } else { "**FAIL**" },
                escape_markdown(&t.detail)
            );
        }
        for line in crate::slo_lines(slo).into_iter().skip(slo.targets.len()) {
            let _ = writeln!(out, "\n{}", escape_markdown(&line));
        }
    }
    if let Some(server) = &report.server_metrics {
        let _ = writeln!(
            out,
            "\n**The server's view** ({} at `{}`, every {} s: {} scrapes, {} failed)\n\n\
             | series | read | unit | min | mean | max |\n|---|---|---|---:|---:|---:|",
            escape_markdown(&server.kind),
            escape_markdown(&server.url),
            server.interval_s,
            server.scrapes,
            server.failures.count
        );
        for (key, s) in &server.series {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} |",
                escape_markdown(key),
                escape_markdown(&s.read),
                escape_markdown(&s.unit),
                crate::server::short_opt(s.min),
                crate::server::short_opt(s.mean),
                crate::server::short_opt(s.max)
            );
        }
        if !server.missing.is_empty() {
            let _ = writeln!(
                out,
                "\nNot exposed by the server: {}",
                escape_markdown(&server.missing.join(", "))
            );
        }
    }
    if !report.errors.is_empty() {
        out.push_str("\n| errors | class | message |\n|---:|---|---|\n");
        for e in &report.errors {
            let _ = writeln!(
                out,
                "| {} | {} | {} |",
                e.count,
                escape_markdown(&e.class),
                escape_markdown(&e.message)
            );
        }
    }

    for (name, value) in &report.sections {
        let _ = writeln!(out, "\n**{}**\n\n| | |\n|---|---|", escape_markdown(name));
        match value.as_object() {
            Some(fields) => {
                for (k, v) in fields {
                    let _ = writeln!(out, "| {} | {} |", escape_markdown(k), cell(v));
                }
            }
            None => {
                let _ = writeln!(out, "| value | {} |", cell(value));
            }
        }
    }
    out
}

/// A JSON value in one table cell: strings as text, anything else as compact JSON, escaped.
fn cell(value: &Value) -> String {
    match value {
        Value::String(s) => escape_markdown(s),
        Value::Null => "–".to_owned(),
        other => escape_markdown(&other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixture;

    #[test]
    fn table_breaking_and_markup_characters_are_escaped() {
        assert_eq!(
            escape_markdown("a|b `c` <d>\nnext"),
            "a\\|b \\`c\\` &lt;d&gt; next"
        );
        let md = render_markdown(&fixture::report());
        assert!(md.contains("&lt;script&gt;alert(1)&lt;/script&gt;"), "{md}");
        assert!(!md.contains("<script"));
        // A message with a pipe and backticks stays in its cell: a row of 4 pipes.
        let row = md
            .lines()
            .find(|l| l.contains("bad \"chunk\""))
            .expect("the error row");
        assert_eq!(row.matches(" | ").count() + 2, 4, "{row}");
        assert!(row.contains("\\| \\`x\\`"), "{row}");
    }

    #[test]
    fn hostile_server_text_stays_inert_text_in_its_cell() {
        assert_eq!(
            escape_markdown("[x](javascript:alert(1)) ![i](http://h/p.png) **b** ~~s~~"),
            "\\[x\\](javascript:alert(1)) !\\[i\\](http://h/p.png) \\*\\*b\\*\\* \\~\\~s\\~\\~"
        );
        let mut report = fixture::report();
        report.errors[0].message =
            "a\r\nb | c `d` [e](http://x) <img src=x onerror=alert(1)>\u{2028}| f\\|".to_owned();
        let md = render_markdown(&report);
        let row = md
            .lines()
            .find(|l| l.contains("onerror"))
            .expect("the error row, on one line");
        // Three cells: a count, a class, the message; every pipe of the message escaped.
        assert_eq!(
            row.matches('|').count() - row.matches("\\|").count(),
            4,
            "{row}"
        );
        assert!(!row.contains("<img") && !row.contains("[e]"), "{row}");
        assert!(
            row.contains("f\\\\\\|"),
            "a backslash cannot unescape the pipe: {row}"
        );
        let html = crate::render_html(&report).unwrap();
        assert!(!html.contains("<img src=x"), "the html escapes it too");
        assert!(html.contains("&lt;img src=x onerror=alert(1)&gt;"));
    }

    #[test]
    fn the_markdown_has_the_key_tables() {
        let md = render_markdown(&fixture::report());
        assert!(md.starts_with("### loadkit: openai-chat · "), "{md}");
        assert!(md.contains("| metric | unit | count | p50 |"));
        assert!(
            md.lines().any(|l| l.starts_with("| ttft | ms | 100 | 50.")),
            "{md}"
        );
        // tpot has no values: no row.
        assert!(!md.contains("| tpot |"));
        assert!(md.contains("**tts**"));
        assert!(
            md.contains("| voice | &lt;b&gt;bold voice&lt;/b&gt; |"),
            "{md}"
        );
    }
}
