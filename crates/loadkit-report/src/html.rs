//! The HTML report: one self-contained page (inline CSS, inline SVG charts drawn with plotters'
//! SVG backend, no JavaScript, nothing loaded from anywhere) that works offline and can be
//! attached to a ticket or opened from a CI artifact.
//!
//! Every string that came from a server or a user (error messages, the target URL, the model,
//! section values, setting values) goes through [`escape`]; the page also carries a
//! Content-Security-Policy that allows no script and no remote resource at all.

use std::fmt::Write as _;

use loadkit_core::metrics::Histogram;
use plotters::prelude::*;
use serde_json::Value;

use crate::{Metric, Report, ReportError};

/// Width and height of every chart, in CSS pixels (scaled down on narrow screens).
const CHART: (u32, u32) = (1000, 340);

/// Line colours, one per series of a chart (colour-blind friendly).
const COLOURS: [RGBColor; 4] = [
    RGBColor(0, 114, 178),
    RGBColor(230, 159, 0),
    RGBColor(0, 158, 115),
    RGBColor(204, 121, 167),
];

/// The latency metrics whose percentile curves are drawn, when they have values.
const PERCENTILE_METRICS: [(&str, &str); 4] = [
    ("ttft", "Time to first token"),
    ("itl", "Inter-token latency"),
    ("e2e", "End to end"),
    ("schedule_lag", "Schedule lag (sent − intended)"),
];

/// The deepest percentile drawn: 99.999 % (five nines).
const MAX_NINES: f64 = 5.0;

const STYLE: &str = "\
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;margin:0 auto;max-width:1100px;padding:1rem 1.5rem;color:#1b1f24;background:#fff;line-height:1.4}\
h1{font-size:1.6rem;margin:.2rem 0}h2{font-size:1.25rem;border-bottom:1px solid #d0d7de;padding-bottom:.2rem;margin-top:2rem}h3{font-size:1.05rem}\
.sub{color:#57606a;margin:0 0 1rem;word-break:break-all}\
nav a{margin-right:.8rem;color:#0969da;text-decoration:none}\
table{border-collapse:collapse;margin:.5rem 0;font-size:.9rem}\
th,td{border:1px solid #d0d7de;padding:.25rem .6rem;text-align:left;vertical-align:top}\
th{background:#f6f8fa}td.n{text-align:right;font-variant-numeric:tabular-nums}\
td.msg{max-width:48rem;word-break:break-word;font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:.85rem}\
figure{margin:1rem 0;padding:.5rem;border:1px solid #d0d7de;border-radius:6px}\
figure svg{max-width:100%;height:auto;display:block}\
figcaption{color:#57606a;font-size:.9rem;margin-top:.3rem}\
.ok{color:#1a7f37}.bad{color:#cf222e;font-weight:600}.warn{background:#fff8c5;border:1px solid #d4a72c;padding:.5rem;border-radius:6px}\
footer{margin-top:2rem;color:#57606a;font-size:.85rem}";

/// `text` safe inside HTML text and attribute values: `&`, `<`, `>`, `"` and `'` escaped.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// One line of a chart: its legend label and its points (a `None` y is a gap in the line).
struct Series<'a> {
    label: &'a str,
    points: Vec<(f64, Option<f64>)>,
}

/// How a chart's x axis is labelled.
#[derive(Clone, Copy)]
enum XAxis {
    /// Seconds since the run's start.
    Seconds,
    /// Percentiles on the nines scale: x is -log10(1 - q).
    Nines,
    /// A plain quantity, with this description (a sweep's prompt words).
    Linear(&'static str),
}

/// Renders `report` as one self-contained HTML page.
pub fn render_html(report: &Report) -> Result<String, ReportError> {
    let run = &report.run;
    let mut out = String::with_capacity(64 * 1024);
    out.push_str("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
    // No script, no remote anything: even a string that escaped escaping could not act.
    out.push_str(
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; \
         style-src 'unsafe-inline'; img-src data:\">\n",
    );
    out.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
    let _ = writeln!(
        out,
        "<title>loadkit report · {} · {}</title>",
        escape(&run.protocol),
        escape(&run.target)
    );
    let _ = writeln!(out, "<style>{STYLE}</style>\n</head>\n<body>");
    let _ = writeln!(out, "<header>\n<h1>loadkit report</h1>");
    let _ = writeln!(
        out,
        "<p class=\"sub\">{} · <span id=\"target\">{}</span>{} · started {} · {} s measured · stopped: {}{}</p>",
        escape(&run.protocol),
        escape(&run.target),
        run.model
            .as_deref()
            .map(|m| format!(" · model {}", escape(m)))
            .unwrap_or_default(),
        escape(&run.started_at),
        run.duration_s,
        escape(&run.stop_reason),
        if run.interrupted {
            " (interrupted)"
        } else {
            ""
        }
    );
    out.push_str(
        "<nav><a href=\"#summary\">Summary</a><a href=\"#over-time\">Over time</a>\
         <a href=\"#server\">Server</a><a href=\"#percentiles\">Percentiles</a><a href=\"#metrics\">Metrics</a>\
         <a href=\"#errors\">Errors</a><a href=\"#run\">Run</a><a href=\"#generator\">Generator</a>\
         <a href=\"#consistency\">Consistency</a><a href=\"#sections\">Sections</a></nav>\n</header>\n",
    );
    warnings(&mut out, report);
    summary(&mut out, report);
    over_time(&mut out, report)?;
    server_view(&mut out, report)?;
    percentiles(&mut out, report)?;
    metrics_table(&mut out, report);
    slo(&mut out, report);
    errors(&mut out, report);
    run_table(&mut out, report);
    generator(&mut out, report);
    consistency(&mut out, report);
    sections(&mut out, report);
    let _ = writeln!(
        out,
        "<footer>Written by loadkit {} from a schema_version {} report.</footer>\n</body>\n</html>",
        escape(&report.loadkit_version),
        report.schema_version
    );
    Ok(out)
}

fn warnings(out: &mut String, report: &Report) {
    let g = &report.generator;
    if g.limited {
        let _ = writeln!(
            out,
            "<p class=\"warn\">Generator-limited: {}; latencies include client-side delay.</p>",
            escape(
                g.limited_reason
                    .as_deref()
                    .unwrap_or("schedule lag p99 > 10 ms")
            )
        );
    }
    for check in report.consistency.failures() {
        let _ = writeln!(
            out,
            "<p class=\"warn\">Consistency check {} failed: {}</p>",
            escape(&check.name),
            escape(&check.detail)
        );
    }
}

/// A two-column table of (key, already-escaped HTML value) rows.
fn kv_table(out: &mut String, rows: &[(&str, String)]) {
    out.push_str("<table>\n");
    for (k, v) in rows {
        let _ = writeln!(out, "<tr><th>{}</th><td>{v}</td></tr>", escape(k));
    }
    out.push_str("</table>\n");
}

fn num(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{x:.0}")
    } else {
        format!("{x:.3}")
    }
}

fn opt(x: Option<f64>) -> String {
    x.map_or_else(|| "–".to_owned(), num)
}

fn summary(out: &mut String, report: &Report) {
    let t = &report.totals;
    let tp = &report.throughput;
    let tok = &report.tokens;
    out.push_str("<section id=\"summary\">\n<h2>Summary</h2>\n");
    kv_table(
        out,
        &[
            ("requests sent", t.requests.to_string()),
            ("succeeded", t.succeeded.to_string()),
            ("failed", t.failed.to_string()),
            (
                "success",
                format!("{:.1} %", report.success_ratio() * 100.0),
            ),
            ("never started (missed)", t.missed.to_string()),
            ("cancelled", t.cancelled.to_string()),
            ("queued at the in-flight cap", t.queued_late.to_string()),
            (
                "stale-connection retries",
                t.stale_connection_retries.to_string(),
            ),
            ("warm-up requests", t.warmup.to_string()),
            ("throughput (req/s)", num(tp.requests_per_s)),
            ("output tokens/s", num(tp.output_tokens_per_s)),
            ("input tokens/s", num(tp.input_tokens_per_s)),
            ("output tokens", tok.output_total.to_string()),
            ("input tokens", tok.input_total.to_string()),
            ("token source", escape(&tok.source)),
            ("measured (s)", num(report.run.duration_s)),
            ("wall time (s)", num(report.run.elapsed_s)),
        ],
    );
    if let Some(first) = &report.first_request {
        let _ = writeln!(
            out,
            "<p>First request: {} ms{} ({}{}; a cold server's model load shows here).</p>",
            num(first.first_request_ms),
            first
                .ttft_ms
                .map(|t| format!(", TTFT {} ms", num(t)))
                .unwrap_or_default(),
            if first.succeeded { "ok" } else { "failed" },
            if first.warmup { ", warm-up" } else { "" }
        );
    }
    out.push_str("</section>\n");
}

fn figure(out: &mut String, id: &str, svg: &str, caption: &str) {
    let _ = writeln!(
        out,
        "<figure id=\"{id}\">\n{svg}\n<figcaption>{caption}</figcaption>\n</figure>"
    );
}

fn over_time(out: &mut String, report: &Report) -> Result<(), ReportError> {
    out.push_str("<section id=\"over-time\">\n<h2>Over time</h2>\n");
    let tl = &report.timeline;
    if tl.is_empty() {
        out.push_str("<p>The report has no timeline (nothing ran).</p>\n</section>\n");
        return Ok(());
    }
    let col = |f: &dyn Fn(&crate::TimelineRow) -> Option<f64>| -> Vec<(f64, Option<f64>)> {
        tl.iter().map(|r| (r.t_s as f64, f(r))).collect()
    };
    let svg = line_chart(
        &[
            Series {
                label: "intended",
                points: col(&|r| Some(r.intended as f64)),
            },
            Series {
                label: "started",
                points: col(&|r| Some(r.started as f64)),
            },
            Series {
                label: "completed",
                points: col(&|r| Some(r.completed as f64)),
            },
        ],
        XAxis::Seconds,
        "requests per second",
    )?;
    figure(
        out,
        "chart-rps",
        &svg,
        "Requests per second: intended by the schedule, actually started, and completed \
         successfully (warm-up included). Started below intended means the generator or the \
         in-flight cap held arrivals back.",
    );
    let svg = line_chart(
        &[Series {
            label: "in flight",
            points: col(&|r| Some(r.in_flight as f64)),
        }],
        XAxis::Seconds,
        "requests in flight",
    )?;
    figure(
        out,
        "chart-in-flight",
        &svg,
        "Requests in flight at the end of each second.",
    );
    let svg = line_chart(
        &[
            Series {
                label: "TTFT p50",
                points: col(&|r| r.ttft_p50),
            },
            Series {
                label: "E2E p95",
                points: col(&|r| r.e2e_p95),
            },
        ],
        XAxis::Seconds,
        "ms",
    )?;
    figure(
        out,
        "chart-latency",
        &svg,
        "Median time to first token and 95th percentile end-to-end latency of the requests \
         completed in each second (gaps: seconds in which none completed).",
    );
    // One line per error class, in the order the classes first appear.
    let mut classes: Vec<&str> = Vec::new();
    for row in &report.timeline {
        for class in row.failed_by_class.keys() {
            if !classes.contains(&class.as_str()) {
                classes.push(class);
            }
        }
    }
    let failed: Vec<Series<'_>> = if classes.is_empty() {
        vec![Series {
            label: "failed",
            points: col(&|r| Some(r.failed as f64)),
        }]
    } else {
        classes
            .iter()
            .map(|class| Series {
                label: class,
                points: col(&|r| Some(r.failed_by_class.get(*class).copied().unwrap_or(0) as f64)),
            })
            .collect()
    };
    let svg = line_chart(&failed, XAxis::Seconds, "failed per second")?;
    figure(
        out,
        "chart-failed",
        &svg,
        "Requests that failed in each second, by error class (see Errors for the messages).",
    );
    out.push_str("</section>\n");
    Ok(())
}

/// "The server's view": the server's own series per second beside the client's, then their
/// summary table (only when `--server-metrics` scraped any).
fn server_view(out: &mut String, report: &Report) -> Result<(), ReportError> {
    let Some(server) = &report.server_metrics else {
        return Ok(());
    };
    out.push_str("<section id=\"server\">\n<h2>The server's view</h2>\n");
    let _ = writeln!(
        out,
        "<p>{} at <code>{}</code>, scraped every {} s: {} scrapes, {} failed{}.</p>",
        escape(&server.kind),
        escape(&server.url),
        server.interval_s,
        server.scrapes,
        server.failures.count,
        server
            .failures
            .first_error
            .as_deref()
            .map(|e| format!(" (first: {})", escape(e)))
            .unwrap_or_default()
    );
    let tl = &report.timeline;
    let col = |key: Option<&str>| -> Vec<(f64, Option<f64>)> {
        tl.iter()
            .map(|r| (r.t_s as f64, key.and_then(|k| r.server.get(k).copied())))
            .collect()
    };
    let running = server.by_role("running").map(|(k, _)| k);
    let waiting = server.by_role("waiting").map(|(k, _)| k);
    if running.is_some() || waiting.is_some() {
        let client: Vec<(f64, Option<f64>)> = tl
            .iter()
            .map(|r| (r.t_s as f64, Some(r.in_flight as f64)))
            .collect();
        let svg = line_chart(
            &[
                Series {
                    label: "client: in flight",
                    points: client,
                },
                Series {
                    label: "server: running",
                    points: col(running),
                },
                Series {
                    label: "server: waiting",
                    points: col(waiting),
                },
            ],
            XAxis::Seconds,
            "requests",
        )?;
        figure(
            out,
            "chart-server-requests",
            &svg,
            "Requests the client had in flight at the end of each second, beside what the \
             server said it was running and holding in its queue at its scrape in that second. \
             In flight above running + waiting is time spent on the network or in the server's \
             front end.",
        );
    }
    if let Some((key, _)) = server.by_role("queue_time") {
        let ttft: Vec<(f64, Option<f64>)> = tl.iter().map(|r| (r.t_s as f64, r.ttft_p50)).collect();
        let svg = line_chart(
            &[
                Series {
                    label: "client: TTFT p50",
                    points: ttft,
                },
                Series {
                    label: "server: queue time (mean)",
                    points: col(Some(key)),
                },
            ],
            XAxis::Seconds,
            "ms",
        )?;
        figure(
            out,
            "chart-server-queue",
            &svg,
            "The client's median time to first token per second, beside the server's mean time \
             in its queue for the requests it dequeued in that interval: the part of TTFT spent \
             waiting for a slot.",
        );
    }
    if let Some((key, _)) = server.by_role("generation_tokens") {
        let client: Vec<(f64, Option<f64>)> = tl
            .iter()
            .map(|r| (r.t_s as f64, Some(r.output_tokens as f64)))
            .collect();
        let svg = line_chart(
            &[
                Series {
                    label: "client: output tokens/s",
                    points: client,
                },
                Series {
                    label: "server: generation tokens/s",
                    points: col(Some(key)),
                },
            ],
            XAxis::Seconds,
            "tokens per second",
        )?;
        figure(
            out,
            "chart-server-tokens",
            &svg,
            "Output tokens of the requests the client completed in each second, beside the \
             server's generation rate from its token counter. The client counts a request's \
             tokens when it ends; vLLM counts them as it makes them (a smoother line), \
             llama-server when the request ends (the same bursts as the client's).",
        );
    }
    if let Some((key, _)) = server.by_role("kv_cache") {
        let svg = line_chart(
            &[Series {
                label: "server: KV-cache usage",
                points: col(Some(key)),
            }],
            XAxis::Seconds,
            "ratio",
        )?;
        figure(
            out,
            "chart-server-kv",
            &svg,
            "The server's KV-cache usage (0 to 1) at each scrape.",
        );
    }
    out.push_str(
        "<table><thead><tr><th>series</th><th>read</th><th>unit</th><th>scrapes</th>\
         <th>min</th><th>mean</th><th>max</th></tr></thead><tbody>\n",
    );
    for (key, s) in &server.series {
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(key),
            escape(&s.read),
            escape(&s.unit),
            s.samples,
            opt(s.min),
            opt(s.mean),
            opt(s.max)
        );
    }
    out.push_str("</tbody></table>\n");
    if !server.missing.is_empty() {
        let _ = writeln!(
            out,
            "<p>Not exposed by this server: {}.</p>",
            escape(&server.missing.join(", "))
        );
    }
    out.push_str("</section>\n");
    Ok(())
}

fn percentiles(out: &mut String, report: &Report) -> Result<(), ReportError> {
    out.push_str("<section id=\"percentiles\">\n<h2>Latency percentiles</h2>\n");
    let mut drawn = 0;
    for (name, title) in PERCENTILE_METRICS {
        let Some(metric) = report.metrics.get(name).filter(|m| m.count > 0) else {
            continue;
        };
        let hist = match Histogram::from_base64(&metric.hdr) {
            Ok(h) if !h.is_empty() => h,
            Ok(_) => continue,
            Err(e) => {
                let _ = writeln!(
                    out,
                    "<p>{}: the histogram could not be read ({}).</p>",
                    escape(name),
                    escape(&e.to_string())
                );
                continue;
            }
        };
        let svg = line_chart(
            &[Series {
                label: name,
                points: percentile_curve(&hist),
            }],
            XAxis::Nines,
            "ms",
        )?;
        figure(
            out,
            &format!("chart-percentiles-{name}"),
            &svg,
            &format!(
                "{title} ({name}) by percentile, from its HDR histogram of {} values (x: the \
                 nines scale, so the tail gets as much room as the median).",
                metric.count
            ),
        );
        drawn += 1;
    }
    if drawn == 0 {
        out.push_str("<p>No latency values were recorded.</p>\n");
    }
    out.push_str("</section>\n");
    Ok(())
}

/// The histogram's values (ms) at percentiles from 0 to 99.999, spaced on the nines scale
/// (up to the depth its count supports).
fn percentile_curve(h: &Histogram) -> Vec<(f64, Option<f64>)> {
    let depth = ((h.count() as f64).log10() + 1.0).clamp(1.0, MAX_NINES);
    let steps = 200;
    (0..=steps)
        .map(|i| {
            let x = depth * i as f64 / steps as f64;
            let q = (1.0 - 10f64.powf(-x)).clamp(0.0, 1.0);
            (x, Some(h.quantile_value(q) as f64 / 1e6))
        })
        .collect()
}

/// The percentile at nines-scale position `x` as a label (`0%`, `90%`, `99.9%`).
fn nines_label(x: f64) -> String {
    let p = 100.0 * (1.0 - 10f64.powf(-x));
    let text = format!("{p:.3}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    format!("{text}%")
}

/// An axis tick: whole numbers without decimals, others with at most three.
fn tick(v: f64) -> String {
    if (v - v.round()).abs() < 1e-9 {
        format!("{v:.0}")
    } else {
        let text = format!("{v:.3}");
        text.trim_end_matches('0').trim_end_matches('.').to_owned()
    }
}

fn draw_error(e: impl std::fmt::Display) -> ReportError {
    ReportError::Chart(e.to_string())
}

/// One SVG line chart of `series` (plotters' SVG backend: text as `<text>`, no font files).
fn line_chart(series: &[Series<'_>], x_axis: XAxis, y_desc: &str) -> Result<String, ReportError> {
    let x_max = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.0))
        .fold(0.0f64, f64::max)
        .max(1.0);
    let y_top = series
        .iter()
        .flat_map(|s| s.points.iter().filter_map(|p| p.1))
        .fold(0.0f64, f64::max);
    let y_max = if y_top > 0.0 { y_top * 1.1 } else { 1.0 };
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, CHART).into_drawing_area();
        root.fill(&WHITE).map_err(draw_error)?;
        let mut chart = ChartBuilder::on(&root)
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(64)
            .build_cartesian_2d(0f64..x_max, 0f64..y_max)
            .map_err(draw_error)?;
        let seconds = |x: &f64| tick(*x);
        let nines = |x: &f64| nines_label(*x);
        let y_fmt = |y: &f64| tick(*y);
        let mut mesh = chart.configure_mesh();
        mesh.y_desc(y_desc)
            .y_label_formatter(&y_fmt)
            .label_style(("sans-serif", 15))
            .axis_desc_style(("sans-serif", 15))
            .light_line_style(RGBColor(238, 238, 238));
        match x_axis {
            XAxis::Seconds => mesh
                .x_desc("seconds since the start")
                .x_labels((x_max as usize + 1).min(16))
                .x_label_formatter(&seconds),
            XAxis::Nines => mesh
                .x_desc("percentile")
                .x_labels(x_max as usize + 1)
                .x_label_formatter(&nines),
            XAxis::Linear(desc) => mesh.x_desc(desc).x_labels(10).x_label_formatter(&seconds),
        };
        mesh.draw().map_err(draw_error)?;
        for (i, s) in series.iter().enumerate() {
            let colour = COLOURS[i % COLOURS.len()];
            // The first line drawn widest and lighter, so one that follows it exactly (started
            // on intended) still shows both.
            let style = if i == 0 && series.len() > 1 {
                colour.mix(0.55).stroke_width(6)
            } else {
                colour.stroke_width(2)
            };
            // Contiguous runs of values, each its own line (a lone value is a dot).
            let mut runs: Vec<Vec<(f64, f64)>> = vec![Vec::new()];
            for &(x, y) in &s.points {
                match y {
                    Some(y) => runs.last_mut().expect("never empty").push((x, y)),
                    None if !runs.last().expect("never empty").is_empty() => runs.push(Vec::new()),
                    None => {}
                }
            }
            let mut labelled = false;
            for run in runs.into_iter().filter(|r| !r.is_empty()) {
                let anno = if run.len() == 1 {
                    chart
                        .draw_series(run.into_iter().map(|p| Circle::new(p, 3, colour.filled())))
                        .map_err(draw_error)?
                } else {
                    chart
                        .draw_series(LineSeries::new(run, style))
                        .map_err(draw_error)?
                };
                if !labelled {
                    anno.label(s.label).legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2))
                    });
                    labelled = true;
                }
            }
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .label_font(("sans-serif", 15))
            .background_style(WHITE.mix(0.85))
            .border_style(RGBColor(180, 180, 180))
            .draw()
            .map_err(draw_error)?;
        root.present().map_err(draw_error)?;
    }
    // Inline SVG in HTML needs no namespace declaration; dropping it leaves the page without
    // a single http(s) address of its own.
    Ok(svg.replacen(" xmlns=\"http://www.w3.org/2000/svg\"", "", 1))
}

fn metric_row(out: &mut String, name: &str, m: &Metric) {
    let _ = writeln!(
        out,
        "<tr><th>{}</th><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
        escape(name),
        escape(&m.unit),
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

fn metrics_table(out: &mut String, report: &Report) {
    out.push_str("<section id=\"metrics\">\n<h2>Metrics</h2>\n<table>\n<tr><th>metric</th><th>unit</th><th>count</th><th>mean</th><th>min</th><th>p50</th><th>p90</th><th>p95</th><th>p99</th><th>max</th></tr>\n");
    for (name, m) in &report.metrics {
        metric_row(out, name, m);
    }
    out.push_str("</table>\n</section>\n");
}

fn slo(out: &mut String, report: &Report) {
    let Some(slo) = &report.slo else {
        return;
    };
    let _ = writeln!(
        out,
        "<section id=\"slo\">\n<h2>SLO: {}</h2>\n<table>\n<tr><th>target</th><th>result</th><th>observed</th></tr>",
        if slo.passed { "passed" } else { "failed" }
    );
    for t in &slo.targets {
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&t.expr),
            if t.passed {
                "pass"
            } else {
                "<strong>FAIL</strong>"
            },
            escape(&t.detail)
        );
    }
    out.push_str("</table>\n");
    for line in crate::slo_lines(slo).into_iter().skip(slo.targets.len()) {
        let _ = writeln!(out, "<p>{}</p>", escape(&line));
    }
    out.push_str("</section>\n");
}

fn errors(out: &mut String, report: &Report) {
    out.push_str("<section id=\"errors\">\n<h2>Errors</h2>\n");
    if report.errors.is_empty() {
        out.push_str("<p class=\"ok\">No errors.</p>\n");
    } else {
        out.push_str("<table>\n<tr><th>count</th><th>class</th><th>message</th></tr>\n");
        for e in &report.errors {
            let _ = writeln!(
                out,
                "<tr><td class=\"n\">{}</td><td>{}</td><td class=\"msg\">{}</td></tr>",
                e.count,
                escape(&e.class),
                escape(&e.message)
            );
        }
        out.push_str("</table>\n");
    }
    out.push_str("</section>\n");
}

fn run_table(out: &mut String, report: &Report) {
    let run = &report.run;
    out.push_str("<section id=\"run\">\n<h2>Run parameters</h2>\n");
    let mut rows = vec![
        ("protocol", escape(&run.protocol)),
        ("target", escape(&run.target)),
        ("model", escape(run.model.as_deref().unwrap_or("–"))),
        ("started at", escape(&run.started_at)),
        ("measured (s)", num(run.duration_s)),
        ("wall time (s)", num(run.elapsed_s)),
        ("warm-up (s)", num(run.warmup_s)),
        ("stop reason", escape(&run.stop_reason)),
        ("interrupted", run.interrupted.to_string()),
        (
            "seed",
            run.seed.map_or_else(|| "–".to_owned(), |s| s.to_string()),
        ),
    ];
    let pattern: Vec<(String, String)> = run
        .pattern
        .iter()
        .map(|(k, v)| (format!("pattern.{k}"), json_html(v)))
        .collect();
    let settings: Vec<(String, String)> = run
        .settings
        .iter()
        .map(|(k, v)| (k.clone(), json_html(v)))
        .collect();
    rows.extend(pattern.iter().map(|(k, v)| (k.as_str(), v.clone())));
    rows.extend(settings.iter().map(|(k, v)| (k.as_str(), v.clone())));
    kv_table(out, &rows);
    out.push_str("</section>\n");
}

fn generator(out: &mut String, report: &Report) {
    let g = &report.generator;
    out.push_str("<section id=\"generator\">\n<h2>Generator</h2>\n");
    let mut rows = vec![
        ("schedule lag p99 (ms)", num(g.lag_p99_ms)),
        ("missed arrivals", g.missed.to_string()),
        (
            "limited",
            if g.limited {
                format!(
                    "<span class=\"bad\">yes</span>: {}",
                    escape(g.limited_reason.as_deref().unwrap_or(""))
                )
            } else {
                "<span class=\"ok\">no</span>".to_owned()
            },
        ),
        ("content events", g.content_events.to_string()),
        ("bytes received", g.bytes.to_string()),
    ];
    if let Some(cpu) = g.cpu_s {
        rows.push(("client CPU (s)", num(cpu)));
    }
    if let Some(u) = g.cpu_utilization {
        rows.push(("client CPU utilisation", format!("{:.1} %", u * 100.0)));
    }
    if let Some(rss) = g.peak_rss_mib {
        rows.push(("peak RSS (MiB)", num(rss)));
    }
    kv_table(out, &rows);
    out.push_str("</section>\n");
}

fn consistency(out: &mut String, report: &Report) {
    let c = &report.consistency;
    out.push_str("<section id=\"consistency\">\n<h2>Consistency checks</h2>\n");
    let _ = writeln!(
        out,
        "<p>{}</p>",
        if c.passed {
            "<span class=\"ok\">Every check passed.</span>"
        } else {
            "<span class=\"bad\">Some checks failed: the report's numbers do not add up.</span>"
        }
    );
    if !c.checks.is_empty() {
        out.push_str("<table>\n<tr><th>check</th><th>result</th><th>detail</th></tr>\n");
        for check in &c.checks {
            let _ = writeln!(
                out,
                "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
                escape(&check.name),
                if check.passed {
                    "<span class=\"ok\">passed</span>"
                } else {
                    "<span class=\"bad\">FAILED</span>"
                },
                escape(&check.detail)
            );
        }
        out.push_str("</table>\n");
    }
    out.push_str("</section>\n");
}

fn sections(out: &mut String, report: &Report) {
    out.push_str("<section id=\"sections\">\n<h2>Protocol sections</h2>\n");
    if report.sections.is_empty() {
        out.push_str("<p>This protocol added no sections.</p>\n");
    }
    for (name, value) in &report.sections {
        let _ = writeln!(
            out,
            "<h3 id=\"section-{}\">{}</h3>",
            escape(&slug(name)),
            escape(name)
        );
        if name == "sweep" && value.get("kind").and_then(Value::as_str) == Some("rate") {
            rate_sweep(out, value);
            continue;
        }
        if name == "sweep" {
            sweep_chart(out, value);
        }
        out.push_str(&json_html(value));
        out.push('\n');
    }
    out.push_str("</section>\n");
}

/// A sweep's TTFT and E2E (p50 per step) against its prompt words, when its steps have both.
fn sweep_chart(out: &mut String, sweep: &Value) {
    let Some(steps) = sweep.get("steps").and_then(Value::as_array) else {
        return;
    };
    let points = |key: &str| -> Vec<(f64, Option<f64>)> {
        steps
            .iter()
            .filter_map(|s| {
                let words = s.get("words")?.as_f64()?;
                Some((words, s.get(key).and_then(Value::as_f64)))
            })
            .collect()
    };
    let ttft = points("ttft_ms");
    if ttft.iter().all(|(_, y)| y.is_none()) {
        return;
    }
    let series = [
        Series {
            label: "TTFT p50",
            points: ttft,
        },
        Series {
            label: "E2E p50",
            points: points("e2e_ms"),
        },
    ];
    if let Ok(svg) = line_chart(&series, XAxis::Linear("prompt words"), "ms") {
        figure(
            out,
            "chart-sweep",
            &svg,
            "Time to first token and end-to-end latency (median of each step) against the \
             prompt's size: where the line bends is where prefill starts to dominate.",
        );
    }
}

/// A rate sweep (`sweep rate`): latency and throughput against the offered load (the
/// synchronous and throughput steps of the automatic profile at their achieved rate; users
/// against their count), then the steps as a table without their histograms.
fn rate_sweep(out: &mut String, sweep: &Value) {
    let Some(steps) = sweep.get("steps").and_then(Value::as_array) else {
        return;
    };
    let users = sweep.get("unit").and_then(Value::as_str) == Some("users");
    let x = |s: &Value| -> Option<f64> {
        if users {
            return s.get("load")?.as_f64();
        }
        s.get("offered_rps")
            .and_then(Value::as_f64)
            .or_else(|| s.get("achieved_rps")?.as_f64())
    };
    let mut ordered: Vec<&Value> = steps.iter().filter(|s| x(s).is_some()).collect();
    ordered.sort_by(|a, b| x(a).unwrap_or(0.0).total_cmp(&x(b).unwrap_or(0.0)));
    let points = |path: &[&str]| -> Vec<(f64, Option<f64>)> {
        ordered
            .iter()
            .filter_map(|s| {
                let y = path
                    .iter()
                    .try_fold(*s, |v, k| v.get(k))
                    .and_then(Value::as_f64);
                Some((x(s)?, y))
            })
            .collect()
    };
    let x_desc = if users { "users" } else { "offered req/s" };
    let latency = [
        Series {
            label: "TTFT p50",
            points: points(&["ttft_ms", "p50"]),
        },
        Series {
            label: "TTFT p95",
            points: points(&["ttft_ms", "p95"]),
        },
        Series {
            label: "E2E p95",
            points: points(&["e2e_ms", "p95"]),
        },
    ];
    if latency
        .iter()
        .any(|s| s.points.iter().any(|(_, y)| y.is_some()))
    {
        if let Ok(svg) = line_chart(&latency, XAxis::Linear(x_desc), "ms") {
            figure(
                out,
                "chart-sweep-latency",
                &svg,
                "Latency against the offered load, one point per step: flat while the server                  keeps up, rising where requests start to queue.",
            );
        }
    }
    let mut rate = vec![Series {
        label: "achieved req/s",
        points: points(&["achieved_rps"]),
    }];
    if !users {
        rate.push(Series {
            label: "offered req/s",
            points: ordered.iter().filter_map(|s| Some((x(s)?, x(s)))).collect(),
        });
    }
    if let Ok(svg) = line_chart(&rate, XAxis::Linear(x_desc), "req/s") {
        figure(
            out,
            "chart-sweep-throughput",
            &svg,
            "Requests completed per second against the offered load: where achieved falls              below offered, the server is saturated.",
        );
    }
    let tokens = [Series {
        label: "output tok/s",
        points: points(&["output_tokens_per_s"]),
    }];
    if let Ok(svg) = line_chart(&tokens, XAxis::Linear(x_desc), "tokens/s") {
        figure(
            out,
            "chart-sweep-tokens",
            &svg,
            "Output tokens per second against the offered load.",
        );
    }
    let mut compact = sweep.clone();
    if let Some(rows) = compact.get_mut("steps").and_then(Value::as_array_mut) {
        for row in rows {
            if let Some(fields) = row.as_object_mut() {
                fields.remove("metrics");
            }
        }
    }
    out.push_str(&json_html(&compact));
    out.push('\n');
}

/// `name` with everything but ASCII letters, digits, `-` and `_` replaced by `-`.
fn slug(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect()
}

/// Any JSON value as escaped HTML: an object as a key/value table, a list of objects as a
/// table with a column per key, other lists joined, scalars as text.
fn json_html(value: &Value) -> String {
    match value {
        Value::Null => "–".to_owned(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => escape(s),
        Value::Object(fields) => {
            let mut out = String::from("<table>");
            for (k, v) in fields {
                let _ = write!(
                    out,
                    "<tr><th>{}</th><td>{}</td></tr>",
                    escape(k),
                    json_html(v)
                );
            }
            out.push_str("</table>");
            out
        }
        Value::Array(items) if !items.is_empty() && items.iter().all(Value::is_object) => {
            let mut columns: Vec<&str> = Vec::new();
            for item in items {
                for k in item.as_object().into_iter().flat_map(|o| o.keys()) {
                    if !columns.contains(&k.as_str()) {
                        columns.push(k);
                    }
                }
            }
            let mut out = String::from("<table><tr>");
            for c in &columns {
                let _ = write!(out, "<th>{}</th>", escape(c));
            }
            out.push_str("</tr>");
            for item in items {
                out.push_str("<tr>");
                for c in &columns {
                    let cell = item.get(*c).map_or_else(String::new, json_html);
                    let _ = write!(out, "<td>{cell}</td>");
                }
                out.push_str("</tr>");
            }
            out.push_str("</table>");
            out
        }
        Value::Array(items) => items.iter().map(json_html).collect::<Vec<_>>().join(", "),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixture;

    #[test]
    fn escape_covers_the_five_characters() {
        assert_eq!(
            escape(r#"<a href="x">Tom & 'Jerry'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;Tom &amp; &#39;Jerry&#39;&lt;/a&gt;"
        );
    }

    #[test]
    fn failures_are_charted_by_class_and_a_sweep_against_its_prompt_size() {
        let mut report = fixture::report();
        let html = render_html(&report).unwrap();
        let failed = html
            .split("<figure id=\"chart-failed\">")
            .nth(1)
            .and_then(|rest| rest.split("</figure>").next())
            .unwrap();
        assert!(
            failed.contains("http_status") && failed.contains("timeout"),
            "{failed}"
        );
        assert!(!html.contains("chart-sweep"));
        report.sections.insert(
            "sweep".to_owned(),
            serde_json::json!({"kind": "context", "steps": [
                {"words": 128, "ttft_ms": 40.0, "e2e_ms": 300.0, "ok": true},
                {"words": 1024, "ttft_ms": 90.0, "e2e_ms": 380.0, "ok": true},
                {"words": 8192, "ttft_ms": null, "e2e_ms": null, "ok": false}
            ]}),
        );
        let html = render_html(&report).unwrap();
        let sweep = html
            .split("<figure id=\"chart-sweep\">")
            .nth(1)
            .and_then(|rest| rest.split("</figure>").next())
            .expect("no sweep chart");
        assert!(
            sweep.contains("prompt words") && sweep.contains("TTFT p50"),
            "{sweep}"
        );
    }

    #[test]
    fn every_figure_has_one_chart_and_a_caption() {
        let html = render_html(&fixture::report()).unwrap();
        let figures = html.matches("<figure id=\"chart-").count();
        // Four over time, one of the server's (it has running and waiting, no queue time,
        // tokens or KV cache), four percentile curves (ttft, itl, e2e, schedule_lag).
        assert_eq!(figures, 9, "{html}");
        assert_eq!(html.matches("<svg").count(), figures);
        assert_eq!(html.matches("<figcaption>").count(), figures);
        for id in [
            "chart-rps",
            "chart-in-flight",
            "chart-latency",
            "chart-failed",
            "chart-server-requests",
            "chart-percentiles-ttft",
            "chart-percentiles-itl",
            "chart-percentiles-e2e",
            "chart-percentiles-schedule_lag",
        ] {
            assert!(html.contains(&format!("<figure id=\"{id}\">")), "{id}");
        }
        // tpot has no values: no curve.
        assert!(!html.contains("chart-percentiles-tpot"));
        // Axes are labelled with text elements (no font files needed).
        assert!(html.contains("<text"), "no axis labels");
        assert!(html.contains("99.9%"), "no nines labels");
    }

    #[test]
    fn the_page_loads_nothing_and_runs_nothing() {
        let report = fixture::report();
        let html = render_html(&report).unwrap();
        assert!(!html.to_lowercase().contains("<script"), "{html}");
        // The only addresses are the target's and its /metrics, shown as text.
        let target = escape(&report.run.target);
        let scraped = &report.server_metrics.as_ref().unwrap().url;
        for (i, _) in html.match_indices("http") {
            let rest = &html[i..];
            if rest.starts_with("http://") || rest.starts_with("https://") {
                assert!(
                    rest.starts_with(&target) || rest.starts_with(scraped.as_str()),
                    "an address other than the target: {}",
                    &rest[..rest.len().min(80)]
                );
            }
        }
        assert!(html.contains(&target));
        for attr in ["src=", "url(", "@import", "<link"] {
            assert!(!html.contains(attr), "{attr}");
        }
    }

    #[test]
    fn server_and_user_text_is_escaped() {
        let html = render_html(&fixture::report()).unwrap();
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(!html.contains("<script>alert(1)"));
        // The target's query string and a section value.
        assert!(html.contains("q=a&amp;b=&lt;i&gt;"), "target not escaped");
        assert!(
            html.contains("&lt;b&gt;bold voice&lt;/b&gt;"),
            "section value"
        );
        assert!(!html.contains("<b>bold voice</b>"));
        // A section's nested object and list of objects become tables.
        assert!(html.contains("<h3 id=\"section-tts\">tts</h3>"), "{html}");
        assert!(
            html.contains("<th>words</th>"),
            "list of objects as columns"
        );
    }

    #[test]
    fn a_nines_label_names_its_percentile() {
        assert_eq!(nines_label(0.0), "0%");
        assert_eq!(nines_label(1.0), "90%");
        assert_eq!(nines_label(3.0), "99.9%");
        assert_eq!(
            (tick(2.0), tick(0.5), tick(0.125)),
            ("2".into(), "0.5".into(), "0.125".into())
        );
    }
}
