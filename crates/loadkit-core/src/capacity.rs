//! Capacity discovery: the search over load levels (ramp by a factor until a level breaks, then
//! bisect between the last good and the first bad level), the knee of the step curve, and
//! over-saturation read from a step's own timeline.
//!
//! The search does not run anything: a front end asks [`Search::next`] for the next level, runs
//! a step at it, and hands back a [`Step`]; [`Search::result`] is the answer.

use std::time::Duration;

use crate::TimelineEntry;

/// What is varied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoadUnit {
    /// Open-loop arrivals per second.
    Rps,
    /// Closed-loop concurrent users (levels are whole numbers).
    Users,
}

impl LoadUnit {
    /// The report's name (`rps`, `users`).
    pub fn as_str(self) -> &'static str {
        match self {
            LoadUnit::Rps => "rps",
            LoadUnit::Users => "users",
        }
    }
}

/// One step's outcome, as the front end judged it.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// The load offered.
    pub load: f64,
    /// Requests completed per second.
    pub achieved_rps: f64,
    /// The latency the knee is read from (ms; the SLO's metric when there is one, else TTFT
    /// or E2E p95).
    pub latency_ms: Option<f64>,
    /// Whether every target and rule held and the step was not over-saturated.
    pub ok: bool,
    /// Why not, when not.
    pub cause: Option<String>,
    /// The mean number of requests in flight over the measured seconds (the concurrency the
    /// load reached; at the knee of a server with fixed slots, about the slot count).
    pub concurrency: Option<f64>,
}

/// How the search goes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SearchConfig {
    /// The unit of the levels.
    pub unit: LoadUnit,
    /// The first level.
    pub start: f64,
    /// Each ramp level is the last times this (above 1).
    pub factor: f64,
    /// Bisection ends when the bracket is at most this fraction of its lower end (users: or
    /// one user apart).
    pub tolerance: f64,
    /// No level above this is tried.
    pub max_load: f64,
}

/// The search's state: the steps so far.
#[derive(Debug, Clone)]
pub struct Search {
    config: SearchConfig,
    steps: Vec<Step>,
}

/// What the search found.
#[derive(Debug, Clone, PartialEq)]
pub struct Discovery {
    /// The unit of every level below.
    pub unit: LoadUnit,
    /// The largest level tried that met every target (`None`: even the first broke).
    pub max_load_meeting_targets: Option<f64>,
    /// The smallest level tried that broke (`None`: none did, up to `max_load`).
    pub first_bad_load: Option<f64>,
    /// Why that level broke.
    pub cause: Option<String>,
    /// The load after which latency rises faster than throughput (see [`knee`]).
    pub knee: Option<f64>,
    /// Every step, in the order run.
    pub steps: Vec<Step>,
}

impl Search {
    /// A search under `config`.
    pub fn new(config: SearchConfig) -> Self {
        Self {
            config,
            steps: Vec::new(),
        }
    }

    fn round(&self, load: f64) -> f64 {
        match self.config.unit {
            LoadUnit::Users => load.round().max(1.0),
            LoadUnit::Rps => (load * 1000.0).round() / 1000.0,
        }
    }

    /// The highest good and lowest bad level so far.
    fn bracket(&self) -> (Option<f64>, Option<f64>) {
        let good = self
            .steps
            .iter()
            .filter(|s| s.ok)
            .map(|s| s.load)
            .fold(None, |m: Option<f64>, l| Some(m.map_or(l, |m| m.max(l))));
        let bad = self
            .steps
            .iter()
            .filter(|s| !s.ok)
            .map(|s| s.load)
            .fold(None, |m: Option<f64>, l| Some(m.map_or(l, |m| m.min(l))));
        (good, bad)
    }

    /// The next level to try, or `None` when the search is done.
    pub fn next(&self) -> Option<f64> {
        let c = &self.config;
        let (good, bad) = self.bracket();
        let next = match (good, bad) {
            (None, None) => c.start,
            // Ramping: nothing broke yet.
            (Some(good), None) => {
                if good >= c.max_load {
                    return None;
                }
                (good * c.factor).min(c.max_load)
            }
            // Bisecting.
            (good, Some(bad)) => {
                let lo = good.unwrap_or(0.0);
                let width = bad - lo;
                let done = match c.unit {
                    LoadUnit::Users => width <= 1.0,
                    // Nothing good yet: halve until a level passes, down to the tolerance of the
                    // first level.
                    LoadUnit::Rps if lo == 0.0 => bad <= c.tolerance * c.start,
                    LoadUnit::Rps => width <= c.tolerance * lo,
                };
                if done || width <= 0.0 {
                    return None;
                }
                (lo + bad) / 2.0
            }
        };
        let next = self.round(next);
        // A level already tried (rounding) ends the search.
        (!self.steps.iter().any(|s| s.load == next)).then_some(next)
    }

    /// Records the step just run.
    pub fn record(&mut self, step: Step) {
        self.steps.push(step);
    }

    /// The steps so far.
    pub fn steps(&self) -> &[Step] {
        &self.steps
    }

    /// What the search found so far.
    pub fn result(&self) -> Discovery {
        let (good, bad) = self.bracket();
        let cause = bad.and_then(|b| {
            self.steps
                .iter()
                .find(|s| s.load == b)
                .and_then(|s| s.cause.clone())
        });
        Discovery {
            unit: self.config.unit,
            max_load_meeting_targets: good,
            first_bad_load: bad,
            cause,
            knee: knee(&self.steps),
            steps: self.steps.clone(),
        }
    }
}

/// The knee of the step curve: with the steps in load order, the first step after which
/// latency grows by a larger fraction than achieved throughput does (`Δlatency / latency >
/// Δthroughput / throughput` to the next step). Below it, more load buys throughput at little
/// latency; above it, latency is what grows. `None` with fewer than two steps with a latency,
/// or when latency never outgrows throughput.
pub fn knee(steps: &[Step]) -> Option<f64> {
    let mut points: Vec<(f64, f64, f64)> = steps
        .iter()
        .filter_map(|s| s.latency_ms.map(|l| (s.load, s.achieved_rps, l)))
        .filter(|(_, rps, l)| *rps > 0.0 && *l > 0.0)
        .collect();
    points.sort_by(|a, b| a.0.total_cmp(&b.0));
    points.windows(2).find_map(|w| {
        let (load, rps_a, lat_a) = w[0];
        let (_, rps_b, lat_b) = w[1];
        let throughput_gain = (rps_b - rps_a) / rps_a;
        let latency_gain = (lat_b - lat_a) / lat_a;
        (latency_gain > throughput_gain).then_some(load)
    })
}

/// Over-saturation seen in a step's own timeline (the seconds of its measured window):
///
/// - **behind**: open loop, fewer than 90 % of the offered arrivals per second started (the
///   cap held them) — `offered` is `None` for closed loop;
/// - **in flight growing**: the mean in-flight count of the last third of the seconds is more
///   than 1.5 times that of the first third, plus 2 (a queue that builds up without bound);
/// - **TTFT rising**: the least-squares slope of the per-second TTFT median, over the step,
///   adds more than half of the first third's mean TTFT.
///
/// Needs at least 6 seconds; the cause as text, or `None`.
pub fn saturation(timeline: &[TimelineEntry], offered: Option<f64>) -> Option<String> {
    if timeline.len() < 6 {
        return None;
    }
    let n = timeline.len();
    let third = n / 3;
    let mean = |it: &mut dyn Iterator<Item = f64>| {
        let (sum, count) = it.fold((0.0, 0usize), |(s, c), v| (s + v, c + 1));
        (count > 0).then(|| sum / count as f64)
    };
    if let Some(offered) = offered {
        let started = mean(&mut timeline.iter().map(|e| e.started as f64)).unwrap_or(0.0);
        if started < 0.9 * offered {
            return Some(format!(
                "behind: {started:.1} requests/s started of {offered:.1} offered"
            ));
        }
    }
    let first = mean(&mut timeline[..third].iter().map(|e| e.in_flight as f64)).unwrap_or(0.0);
    let last = mean(&mut timeline[n - third..].iter().map(|e| e.in_flight as f64)).unwrap_or(0.0);
    if last > 1.5 * first + 2.0 {
        return Some(format!(
            "in flight growing: {first:.1} in the first third of the step, {last:.1} in the last"
        ));
    }
    let ttft: Vec<(f64, f64)> = timeline
        .iter()
        .enumerate()
        .filter_map(|(i, e)| e.ttft_p50.map(|t| (i as f64, ms(t))))
        .collect();
    if ttft.len() >= 6 {
        let base = mean(&mut ttft[..ttft.len() / 3].iter().map(|p| p.1)).unwrap_or(0.0);
        let slope = slope(&ttft);
        let rise = slope * (ttft.len() - 1) as f64;
        if base > 0.0 && rise > 0.5 * base {
            return Some(format!(
                "TTFT rising: {slope:.1} ms per second over the step, from {base:.1} ms"
            ));
        }
    }
    None
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Least-squares slope of y over x.
fn slope(points: &[(f64, f64)]) -> f64 {
    let n = points.len() as f64;
    let (sx, sy) = points
        .iter()
        .fold((0.0, 0.0), |(a, b), (x, y)| (a + x, b + y));
    let (mx, my) = (sx / n, sy / n);
    let (num, den) = points.iter().fold((0.0, 0.0), |(num, den), (x, y)| {
        (num + (x - mx) * (y - my), den + (x - mx) * (x - mx))
    });
    if den == 0.0 {
        0.0
    } else {
        num / den
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A server with `slots` parallel slots, each request taking `service_ms` when it gets one:
    /// TTFT p95 is the service time below capacity and grows with the queue above it.
    fn step(load: f64, capacity: f64, slo_ms: f64) -> Step {
        let service = 100.0;
        let (achieved, latency) = if load < capacity {
            let util = load / capacity;
            (
                load,
                service * (1.0 + util * util / (1.0 - util).max(0.01) * 0.1),
            )
        } else {
            (capacity, service * 10.0 * load / capacity)
        };
        let ok = latency < slo_ms;
        Step {
            load,
            achieved_rps: achieved,
            latency_ms: Some(latency),
            concurrency: None,
            ok,
            cause: (!ok).then(|| format!("ttft.p95 {latency:.0} ms")),
        }
    }

    fn search(capacity: f64, slo_ms: f64, tolerance: f64) -> Discovery {
        let mut s = Search::new(SearchConfig {
            unit: LoadUnit::Rps,
            start: 1.0,
            factor: 2.0,
            tolerance,
            max_load: 10_000.0,
        });
        while let Some(load) = s.next() {
            assert!(s.steps().len() < 40, "the search does not end");
            s.record(step(load, capacity, slo_ms));
        }
        s.result()
    }

    #[test]
    fn ramp_then_bisect_brackets_the_breaking_load_within_the_tolerance() {
        // With the queueing model above, TTFT p95 passes 300 ms at about 90 % of capacity.
        let d = search(50.0, 300.0, 0.05);
        let (good, bad) = (
            d.max_load_meeting_targets.unwrap(),
            d.first_bad_load.unwrap(),
        );
        assert!(
            good < bad && (bad - good) <= 0.05 * good + 1e-9,
            "{good} {bad}"
        );
        // The truth: the largest load meeting 300 ms.
        let truth = (1..=100_000)
            .map(|i| i as f64 / 1000.0)
            .take_while(|&l| step(l, 50.0, 300.0).ok)
            .last()
            .unwrap();
        assert!(good <= truth && truth < bad, "{good} ≤ {truth} < {bad}");
        // 1, 2, 4, ..., 64 (7 steps) then a few bisections: far fewer than a linear sweep at
        // the same resolution (truth / (tolerance × truth) = 20 steps of 5 %, from 1 to 46).
        assert!(d.steps.len() <= 12, "{} steps", d.steps.len());
        assert_eq!(
            d.cause.as_deref().map(|c| c.starts_with("ttft.p95")),
            Some(true)
        );
    }

    #[test]
    fn the_knee_is_where_latency_outgrows_throughput() {
        let steps: Vec<Step> = [10.0, 20.0, 30.0, 40.0, 48.0, 60.0]
            .iter()
            .map(|&l| step(l, 50.0, 1e9))
            .collect();
        let k = knee(&steps).unwrap();
        assert!((30.0..=48.0).contains(&k), "knee at {k}");
        // Linear throughput, flat latency: no knee.
        let flat: Vec<Step> = (1..5)
            .map(|i| Step {
                load: i as f64,
                achieved_rps: i as f64,
                latency_ms: Some(100.0),
                concurrency: None,
                ok: true,
                cause: None,
            })
            .collect();
        assert_eq!(knee(&flat), None);
    }

    #[test]
    fn a_first_level_that_breaks_is_bisected_down_from_zero() {
        let d = search(0.5, 300.0, 0.1);
        let good = d.max_load_meeting_targets.unwrap();
        assert!(good > 0.3 && good < 0.5, "{d:?}");
    }

    #[test]
    fn users_are_whole_and_stop_one_apart() {
        let mut s = Search::new(SearchConfig {
            unit: LoadUnit::Users,
            start: 1.0,
            factor: 2.0,
            tolerance: 0.01,
            max_load: 1000.0,
        });
        while let Some(users) = s.next() {
            assert_eq!(users.fract(), 0.0);
            s.record(Step {
                load: users,
                achieved_rps: users,
                latency_ms: Some(100.0),
                concurrency: None,
                ok: users <= 37.0,
                cause: None,
            });
        }
        let d = s.result();
        assert_eq!(
            (d.max_load_meeting_targets, d.first_bad_load),
            (Some(37.0), Some(38.0))
        );
    }

    #[test]
    fn nothing_breaking_ends_at_the_maximum() {
        let mut s = Search::new(SearchConfig {
            unit: LoadUnit::Rps,
            start: 10.0,
            factor: 4.0,
            tolerance: 0.05,
            max_load: 100.0,
        });
        let mut tried = Vec::new();
        while let Some(l) = s.next() {
            tried.push(l);
            s.record(Step {
                load: l,
                achieved_rps: l,
                latency_ms: None,
                concurrency: None,
                ok: true,
                cause: None,
            });
        }
        assert_eq!(tried, [10.0, 40.0, 100.0]);
        assert_eq!(s.result().first_bad_load, None);
    }

    fn second(started: u64, in_flight: u64, ttft_ms: u64) -> TimelineEntry {
        TimelineEntry {
            started,
            in_flight,
            ttft_p50: Some(Duration::from_millis(ttft_ms)),
            ..TimelineEntry::default()
        }
    }

    #[test]
    fn saturation_is_read_from_the_steps_own_seconds() {
        let steady: Vec<TimelineEntry> = (0..10).map(|_| second(20, 5, 100)).collect();
        assert_eq!(saturation(&steady, Some(20.0)), None);
        let behind: Vec<TimelineEntry> = (0..10).map(|_| second(15, 5, 100)).collect();
        assert!(saturation(&behind, Some(20.0))
            .unwrap()
            .starts_with("behind"));
        let growing: Vec<TimelineEntry> = (0..9).map(|i| second(20, 5 + 3 * i, 100)).collect();
        assert!(saturation(&growing, None)
            .unwrap()
            .starts_with("in flight growing"));
        let rising: Vec<TimelineEntry> = (0..9).map(|i| second(20, 5, 100 + 20 * i)).collect();
        assert!(saturation(&rising, None)
            .unwrap()
            .starts_with("TTFT rising"));
        // Noise around a level is not a rise.
        let noisy: Vec<TimelineEntry> = (0..9)
            .map(|i| second(20, 5, if i % 2 == 0 { 90 } else { 115 }))
            .collect();
        assert_eq!(saturation(&noisy, None), None);
        assert_eq!(
            saturation(&steady[..5], Some(100.0)),
            None,
            "too short to judge"
        );
    }
}
