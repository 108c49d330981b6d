//! `--server-metrics`: finds the server's own `/metrics` (or takes the URL given), scrapes it on
//! a thread of its own while the load runs, and lays what it saw on the report's per-second
//! timeline and in its `server_metrics` section.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use loadkit_report::{Report, ScrapeFailures, ServerMetrics, ServerSeries};
use loadkit_scrape::{Config, Fetcher, Kind, Log, Scraper, Selector, Series};

use crate::args::{RunArgs, ServerMetricsMode};
use crate::Fatal;

/// How long `auto` waits for the target's `/metrics` before deciding it has none.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// The user's `--server-metric` series, each checked (one line naming the bad one).
fn user_series(args: &RunArgs) -> Result<Vec<Series>, Fatal> {
    args.server_metric
        .iter()
        .map(|text| {
            let selector: Selector = text
                .parse()
                .map_err(|e| Fatal::usage(format!("--server-metric {e}")))?;
            Ok(Series::user(text.trim(), selector))
        })
        .collect()
}

/// `/metrics` on the host of `target`, when it is an `http` or `ws` URL.
pub(crate) fn metrics_url(target: &str) -> Option<String> {
    let (scheme, rest) = target.split_once("://")?;
    if scheme != "http" && scheme != "ws" {
        return None;
    }
    let authority = rest.split(['/', '?', '#']).next()?;
    let authority = authority.rsplit('@').next()?;
    (!authority.is_empty()).then(|| format!("http://{authority}/metrics"))
}

/// Checks the server-metrics flags (before anything starts).
pub(crate) fn check(args: &RunArgs) -> Result<(), Fatal> {
    user_series(args)?;
    if args.server_metrics_every < Duration::from_millis(100) {
        return Err(Fatal::usage(
            "--server-metrics-every must be at least 100ms (a scrape costs the server too)",
        ));
    }
    Ok(())
}

/// Starts the scraper the flags ask for: `None` when off, or when `auto` found no `/metrics` of
/// a known server on the target's host.
pub(crate) async fn start(args: &RunArgs, target: &str) -> Result<Option<Scraper>, Fatal> {
    let extra = user_series(args)?;
    let (url, kind) = match &args.server_metrics {
        ServerMetricsMode::Off => return Ok(None),
        ServerMetricsMode::Url(url) => {
            Fetcher::new(url, PROBE_TIMEOUT)
                .map_err(|e| Fatal::usage(format!("--server-metrics {e}")))?;
            (url.clone(), None)
        }
        ServerMetricsMode::Auto => {
            let Some(url) = metrics_url(target) else {
                return Ok(None);
            };
            let Ok(fetcher) = Fetcher::new(&url, PROBE_TIMEOUT) else {
                return Ok(None);
            };
            let kind = match fetcher.fetch().await {
                Ok(exposition) => Kind::detect(&exposition),
                Err(e) => {
                    if args.target.verbose {
                        eprintln!("server metrics: none at {url} ({e})");
                    }
                    return Ok(None);
                }
            };
            if kind == Kind::Other && extra.is_empty() {
                if args.target.verbose {
                    eprintln!("server metrics: {url} has none of the names loadkit knows");
                }
                return Ok(None);
            }
            (url, Some(kind))
        }
    };
    let scraper = Scraper::start(Config {
        url: url.clone(),
        every: args.server_metrics_every,
        kind,
        extra,
    })
    .map_err(|e| Fatal::usage(format!("--server-metrics {e}")))?;
    if !args.target.quiet && !args.as_step {
        eprintln!(
            "server metrics: {}{} every {}",
            kind.map(|k| format!("{} at ", k.as_str()))
                .unwrap_or_default(),
            crate::secret::redact(&url),
            humantime::format_duration(args.server_metrics_every)
        );
    }
    Ok(Some(scraper))
}

/// Lays the scraper's points on `report`'s timeline (the last scrape in each second of a run
/// that started at `started_at` and lasted `elapsed`) and writes the `server_metrics` section.
/// Scrapes before the start (the first, which primes the rates) or after the end are left out.
pub(crate) fn attach(report: &mut Report, log: Log, started_at: SystemTime, elapsed: Duration) {
    let mut stats: Vec<(u64, f64, f64, f64)> =
        vec![(0, f64::INFINITY, 0.0, f64::NEG_INFINITY); log.series.len()];
    for point in &log.points {
        let Ok(offset) = (log.started + point.at).duration_since(started_at) else {
            continue;
        };
        if offset > elapsed {
            continue;
        }
        let mut row = report.timeline.get_mut(offset.as_secs() as usize);
        for (i, value) in point.values.iter().enumerate() {
            let Some(v) = value.filter(|v| v.is_finite()) else {
                continue;
            };
            let v = round3(v);
            let s = &mut stats[i];
            *s = (s.0 + 1, s.1.min(v), s.2 + v, s.3.max(v));
            if let Some(row) = row.as_deref_mut() {
                row.server.insert(log.series[i].key.clone(), v);
            }
        }
    }
    let series: BTreeMap<String, ServerSeries> = log
        .series
        .iter()
        .zip(&stats)
        .filter_map(|(s, &(n, min, sum, max))| {
            let source = s.source.clone()?;
            let some = |x: f64| (n > 0).then_some(round3(x));
            Some((
                s.key.clone(),
                ServerSeries {
                    role: s.role.as_str().to_owned(),
                    source,
                    read: s.read.as_str().to_owned(),
                    unit: s.unit.clone(),
                    samples: n,
                    min: some(min),
                    mean: some(sum / n.max(1) as f64),
                    max: some(max),
                },
            ))
        })
        .collect();
    report.server_metrics = Some(ServerMetrics {
        kind: log.kind.as_str().to_owned(),
        url: crate::secret::redact(&log.url),
        interval_s: log.every.as_secs_f64(),
        scrapes: log.scrapes,
        failures: ScrapeFailures {
            count: log.failures,
            first_error: log.first_error.clone(),
        },
        rejected_lines: log.rejected_lines,
        first_rejected: log.first_rejected.clone(),
        missing: log.missing().into_iter().map(str::to_owned).collect(),
        series,
    });
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_metrics_url_is_on_the_target_s_host() {
        assert_eq!(
            metrics_url("http://127.0.0.1:8000/v1/chat/completions").as_deref(),
            Some("http://127.0.0.1:8000/metrics")
        );
        assert_eq!(
            metrics_url("ws://user:pw@host:9/ws?x=1").as_deref(),
            Some("http://host:9/metrics")
        );
        assert_eq!(metrics_url("https://host/v1"), None);
        assert_eq!(metrics_url("not a url"), None);
    }
}
