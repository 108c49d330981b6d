//! Which samples make a series, and how a series' value is read from one scrape: a gauge's sum or
//! mean, a counter's rate since the last scrape, or a histogram's mean over the interval.

use crate::kind::Role;
use crate::text::{Exposition, MetricType};

/// How a series' value comes from its samples.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Read {
    /// A gauge: the sum over the matching label sets (requests on every model, engine, GPU).
    Sum,
    /// A gauge: the mean over the matching label sets (a usage ratio per engine).
    Mean,
    /// A counter: its rise since the previous scrape, per second (a reset counts from zero).
    /// No value on the first scrape.
    Rate,
    /// A histogram or summary: `Δ_sum / Δ_count` since the previous scrape, times `scale` (the
    /// mean of what was observed in the interval). No value when nothing was observed.
    WindowMean {
        /// Multiplies the mean (1e3: seconds to milliseconds).
        scale: f64,
    },
    /// Decided on the first scrape from the family's `# TYPE` (and the `_total` suffix):
    /// counters are read as [`Read::Rate`], histograms and summaries as [`Read::WindowMean`],
    /// anything else as [`Read::Sum`]. For the series a user names.
    Auto,
}

impl Read {
    /// The reading's name in the report (`gauge`, `mean`, `rate`, `window_mean`, `auto`).
    pub fn as_str(self) -> &'static str {
        match self {
            Read::Sum => "gauge",
            Read::Mean => "mean",
            Read::Rate => "rate",
            Read::WindowMean { .. } => "window_mean",
            Read::Auto => "auto",
        }
    }
}

/// A metric name with an optional label filter, as a user writes it:
/// `vllm:num_requests_running{model_name="m"}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selector {
    /// The metric name (for a histogram, its family name, without `_sum`).
    pub name: String,
    /// Labels a sample must carry, with these values.
    pub labels: Vec<(String, String)>,
}

impl std::str::FromStr for Selector {
    type Err = String;

    /// Parses `NAME` or `NAME{key="value",...}` (quotes optional).
    fn from_str(s: &str) -> Result<Selector, String> {
        let s = s.trim();
        let (name, rest) = match s.find('{') {
            Some(i) => (&s[..i], Some(&s[i + 1..])),
            None => (s, None),
        };
        let valid = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
            && !name.starts_with(|c: char| c.is_ascii_digit());
        if !valid {
            return Err(format!(
                "{s:?} is not a metric name (letters, digits, `_` and `:`, then an optional {{label=\"value\"}})"
            ));
        }
        let mut labels = Vec::new();
        if let Some(rest) = rest {
            let body = rest
                .strip_suffix('}')
                .ok_or_else(|| format!("{s:?}: the label set has no closing `}}`"))?;
            for pair in body.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                let (k, v) = pair
                    .split_once('=')
                    .ok_or_else(|| format!("{s:?}: label {pair:?} has no `=`"))?;
                let v = v.trim();
                let v = v
                    .strip_prefix('"')
                    .and_then(|v| v.strip_suffix('"'))
                    .unwrap_or(v);
                labels.push((k.trim().to_owned(), v.to_owned()));
            }
        }
        Ok(Selector {
            name: name.to_owned(),
            labels,
        })
    }
}

/// One series to keep, and the state its reading needs between scrapes.
#[derive(Debug, Clone)]
pub struct Series {
    /// What it means.
    pub role: Role,
    /// Its key in the report (the first name, or what the user wrote).
    pub key: String,
    /// The names it has had, most recent first; the first present is read.
    pub names: Vec<String>,
    /// Labels a sample must carry.
    pub labels: Vec<(String, String)>,
    /// How its value is read.
    pub read: Read,
    /// Its unit (`requests`, `ratio`, `tokens/s`, `ms`, or empty for a user series).
    pub unit: String,
    /// The name found on the server, once a scrape had it.
    pub source: Option<String>,
    last: Option<(f64, f64, f64)>,
}

impl Series {
    /// A series of a known kind.
    pub fn new(role: Role, names: &[&str], read: Read, unit: &str) -> Series {
        Series {
            role,
            key: names[0].to_owned(),
            names: names.iter().map(|n| (*n).to_owned()).collect(),
            labels: Vec::new(),
            read,
            unit: unit.to_owned(),
            source: None,
            last: None,
        }
    }

    /// A series the user named (`--server-metric`), read by its declared type.
    pub fn user(key: &str, selector: Selector) -> Series {
        Series {
            role: Role::User,
            key: key.to_owned(),
            names: vec![selector.name],
            labels: selector.labels,
            read: Read::Auto,
            unit: String::new(),
            source: None,
            last: None,
        }
    }

    fn matching<'a>(&'a self, e: &'a Exposition, name: &'a str) -> impl Iterator<Item = f64> + 'a {
        e.named(name)
            .filter(|s| {
                self.labels
                    .iter()
                    .all(|(k, v)| s.label(k) == Some(v.as_str()))
            })
            .map(|s| s.value)
    }

    /// Resolves [`Read::Auto`] and the name to read, from the first scrape that has one.
    fn resolve(&mut self, e: &Exposition) -> Option<String> {
        if let Some(source) = &self.source {
            return Some(source.clone());
        }
        let name = self.names.iter().find(|n| {
            e.named(n).next().is_some() || e.named(&format!("{n}_count")).next().is_some()
        })?;
        let name = name.clone();
        if self.read == Read::Auto {
            let histogram = e.named(&format!("{name}_count")).next().is_some();
            self.read = match e.type_of(&name) {
                _ if histogram => Read::WindowMean { scale: 1.0 },
                Some(MetricType::Counter) => Read::Rate,
                Some(MetricType::Histogram | MetricType::Summary) => {
                    Read::WindowMean { scale: 1.0 }
                }
                _ if name.ends_with("_total") => Read::Rate,
                _ => Read::Sum,
            };
            if self.unit.is_empty() {
                self.unit = match self.read {
                    Read::Rate => "per s".to_owned(),
                    _ => String::new(),
                };
            }
        }
        self.source = Some(name.clone());
        Some(name)
    }

    /// The series' value in the scrape `e` taken `t` seconds into the scraper's life; `None`
    /// where the server has no such sample or the reading needs a previous scrape.
    pub fn read(&mut self, e: &Exposition, t: f64) -> Option<f64> {
        let name = self.resolve(e)?;
        match self.read {
            Read::Sum | Read::Auto => {
                let mut any = false;
                let sum = self.matching(e, &name).inspect(|_| any = true).sum::<f64>();
                any.then_some(sum)
            }
            Read::Mean => {
                let values: Vec<f64> = self.matching(e, &name).collect();
                (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
            }
            Read::Rate => {
                let mut any = false;
                let total = self.matching(e, &name).inspect(|_| any = true).sum::<f64>();
                if !any {
                    return None;
                }
                let prev = self.last.replace((t, total, 0.0));
                let (t0, v0, _) = prev?;
                let dt = t - t0;
                if dt <= 0.0 {
                    return None;
                }
                let rise = if total >= v0 { total - v0 } else { total };
                Some(rise / dt)
            }
            Read::WindowMean { scale } => {
                let sum: Vec<f64> = self.matching(e, &format!("{name}_sum")).collect();
                let count: Vec<f64> = self.matching(e, &format!("{name}_count")).collect();
                if sum.is_empty() || count.is_empty() {
                    return None;
                }
                let (sum, count) = (sum.iter().sum::<f64>(), count.iter().sum::<f64>());
                let prev = self.last.replace((t, sum, count));
                let (_, s0, c0) = prev?;
                let (ds, dc) = if count >= c0 {
                    (sum - s0, count - c0)
                } else {
                    (sum, count)
                };
                (dc > 0.0).then(|| ds / dc * scale)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::text::parse;

    #[test]
    fn selectors_parse_names_and_labels() {
        let s: Selector = "vllm:x{model_name=\"m\", engine=0}".parse().unwrap();
        assert_eq!(s.name, "vllm:x");
        assert_eq!(
            s.labels,
            vec![
                ("model_name".into(), "m".into()),
                ("engine".into(), "0".into())
            ]
        );
        assert!("".parse::<Selector>().is_err());
        assert!("a b".parse::<Selector>().is_err());
        assert!("a{b=\"c\"".parse::<Selector>().is_err());
    }

    #[test]
    fn counters_become_rates_and_histograms_interval_means() {
        let mut rate = Series::new(Role::PromptTokens, &["p_total"], Read::Rate, "tokens/s");
        let mut queue = Series::new(
            Role::QueueTime,
            &["q"],
            Read::WindowMean { scale: 1e3 },
            "ms",
        );
        let scrape =
            |p: f64, s: f64, c: f64| parse(&format!("p_total {p}\nq_sum {s}\nq_count {c}\n"));
        let first = scrape(100.0, 1.0, 10.0);
        assert_eq!(rate.read(&first, 0.0), None, "a rate needs two scrapes");
        assert_eq!(queue.read(&first, 0.0), None);
        let second = scrape(300.0, 1.5, 20.0);
        assert_eq!(rate.read(&second, 2.0), Some(100.0));
        assert_eq!(
            queue.read(&second, 2.0),
            Some(50.0),
            "0.5 s over 10 requests = 50 ms"
        );
        let idle = scrape(300.0, 1.5, 20.0);
        assert_eq!(queue.read(&idle, 3.0), None, "nothing dequeued: no mean");
        let reset = scrape(40.0, 0.2, 2.0);
        assert_eq!(
            rate.read(&reset, 4.0),
            Some(20.0),
            "a restarted counter counts from zero"
        );
    }

    #[test]
    fn gauges_sum_or_average_label_sets_and_filter_by_label() {
        let e = parse(
            "r{engine=\"0\"} 3\nr{engine=\"1\"} 5\nu{engine=\"0\"} 0.2\nu{engine=\"1\"} 0.4\n",
        );
        let mut sum = Series::new(Role::Running, &["r"], Read::Sum, "requests");
        let mut mean = Series::new(Role::KvCache, &["u"], Read::Mean, "ratio");
        assert_eq!(sum.read(&e, 0.0), Some(8.0));
        assert!((mean.read(&e, 0.0).unwrap() - 0.3).abs() < 1e-9);
        let mut one = Series::user("r{engine=\"1\"}", "r{engine=\"1\"}".parse().unwrap());
        assert_eq!(one.read(&e, 0.0), Some(5.0));
        let mut none = Series::new(Role::Waiting, &["w"], Read::Sum, "requests");
        assert_eq!(none.read(&e, 0.0), None);
        assert_eq!(none.source, None);
    }

    #[test]
    fn a_renamed_metric_is_read_under_either_name() {
        let mut kv = Series::new(Role::KvCache, &["new", "old"], Read::Mean, "ratio");
        assert_eq!(kv.read(&parse("old 0.5\n"), 0.0), Some(0.5));
        assert_eq!(kv.source.as_deref(), Some("old"));
    }

    #[test]
    fn user_series_are_read_by_their_declared_type() {
        let e = parse("# TYPE c counter\nc 10\n# TYPE h histogram\nh_sum 1\nh_count 2\ng 7\n");
        let mut c = Series::user("c", "c".parse().unwrap());
        let mut h = Series::user("h", "h".parse().unwrap());
        let mut g = Series::user("g", "g".parse().unwrap());
        assert_eq!(c.read(&e, 0.0), None);
        assert_eq!(c.read, Read::Rate);
        assert_eq!(h.read(&e, 0.0), None);
        assert_eq!(h.read, Read::WindowMean { scale: 1.0 });
        assert_eq!(g.read(&e, 0.0), Some(7.0));
        assert_eq!(g.read, Read::Sum);
    }
}
