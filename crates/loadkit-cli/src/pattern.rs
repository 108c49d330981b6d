//! `--pattern` and its flags, validated into a schedule from loadkit-schedule; and the
//! `loadkit plan` chart and CSV of the planned load per second.

use std::fmt::Write as _;
use std::time::Duration;

use clap::{Args, ValueEnum};
use loadkit_core::schedule::{
    parse_rate, parse_stages, plan_arrivals, plan_users, ArrivalSchedule, BurstRate, ChaosRate,
    ConstantRate, FixedUsers, PoissonRate, RampRate, RampUsers, SpikeRate, SpikeUsers, StagesRate,
    StagesUsers, UserSchedule,
};

/// The load patterns (docs/patterns.md defines each).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum PatternKind {
    /// A fixed rate (--rps) or a fixed number of users (--users).
    Constant,
    /// Exponential gaps at a mean rate (--rps), seeded by --seed.
    Poisson,
    /// --burst-size requests at once every --burst-every, on top of an optional base --rps.
    Burst,
    /// Rate (or --closed-loop users) from --from to --to over --over, then hold; or --users
    /// with --spawn-rate.
    Ramp,
    /// Base --rps (or --users) jumping to --spike-rps (or --spike-users) for --spike-duration
    /// every --spike-every.
    Spike,
    /// A seeded random walk of the rate between --min-rps and --max-rps, with bursts and pauses.
    Chaos,
    /// --users users each starting one request every --interval, whatever the response time.
    FixedInterval,
    /// A list of duration:target steps (--stages 30s:10,2m:50,30s:0), rate or --closed-loop users.
    Stages,
}

#[derive(Debug, Clone, Args)]
pub(crate) struct PatternArgs {
    /// Load pattern.
    #[arg(
        long,
        value_enum,
        default_value = "constant",
        help_heading = "Load pattern"
    )]
    pub(crate) pattern: PatternKind,

    /// Open loop: requests per second (constant, poisson; base rate of burst and spike).
    /// Default when neither --rps nor --users is given: 5.
    #[arg(long, value_name = "R", value_parser = non_negative_f64, allow_negative_numbers = true, help_heading = "Load pattern")]
    pub(crate) rps: Option<f64>,

    /// Closed loop: concurrent users (constant, fixed-interval, ramp with --spawn-rate; base of
    /// spike).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32), help_heading = "Load pattern")]
    pub(crate) users: Option<u32>,

    /// Ramp: starting rate (or users with --closed-loop).
    #[arg(long, value_name = "X", value_parser = non_negative_f64, allow_negative_numbers = true, help_heading = "Load pattern")]
    pub(crate) from: Option<f64>,

    /// Ramp: final rate (or users with --closed-loop), held after --over.
    #[arg(long, value_name = "X", value_parser = non_negative_f64, allow_negative_numbers = true, help_heading = "Load pattern")]
    pub(crate) to: Option<f64>,

    /// Ramp: how long the ramp takes.
    #[arg(long, value_name = "DURATION", value_parser = crate::args::duration, help_heading = "Load pattern")]
    pub(crate) over: Option<Duration>,

    /// Ramp: start --users at this rate (users per second: 5, 5/s, 300/m).
    #[arg(long, value_name = "RATE", value_parser = rate, help_heading = "Load pattern")]
    pub(crate) spawn_rate: Option<f64>,

    /// Ramp and stages: targets are users (closed loop), not requests per second.
    #[arg(long, help_heading = "Load pattern")]
    pub(crate) closed_loop: bool,

    /// Burst: requests per burst (chaos: requests per random burst).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32), help_heading = "Load pattern")]
    pub(crate) burst_size: Option<u32>,

    /// Burst: time between bursts.
    #[arg(long, value_name = "DURATION", value_parser = crate::args::duration, help_heading = "Load pattern")]
    pub(crate) burst_every: Option<Duration>,

    /// Spike: the rate during a spike.
    #[arg(long, value_name = "R", value_parser = non_negative_f64, allow_negative_numbers = true, help_heading = "Load pattern")]
    pub(crate) spike_rps: Option<f64>,

    /// Spike: the users during a spike (closed loop).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32), help_heading = "Load pattern")]
    pub(crate) spike_users: Option<u32>,

    /// Spike: how long each spike lasts.
    #[arg(long, value_name = "DURATION", value_parser = crate::args::duration, help_heading = "Load pattern")]
    pub(crate) spike_duration: Option<Duration>,

    /// Spike: time from one spike start to the next (the first spike starts at this offset).
    #[arg(long, value_name = "DURATION", value_parser = crate::args::duration, help_heading = "Load pattern")]
    pub(crate) spike_every: Option<Duration>,

    /// Chaos: lowest rate of the random walk.
    #[arg(long, value_name = "R", value_parser = non_negative_f64, allow_negative_numbers = true, help_heading = "Load pattern")]
    pub(crate) min_rps: Option<f64>,

    /// Chaos: highest rate of the random walk.
    #[arg(long, value_name = "R", value_parser = non_negative_f64, allow_negative_numbers = true, help_heading = "Load pattern")]
    pub(crate) max_rps: Option<f64>,

    /// Chaos: length of one random-walk step [default: 1s].
    #[arg(long, value_name = "DURATION", value_parser = crate::args::duration, help_heading = "Load pattern")]
    pub(crate) chaos_step: Option<Duration>,

    /// Chaos: largest rate change per step, as a fraction of max − min [default: 0.25].
    #[arg(long, value_name = "F", value_parser = non_negative_f64, help_heading = "Load pattern")]
    pub(crate) chaos_volatility: Option<f64>,

    /// Chaos: probability that a step holds a burst [default: 0.05].
    #[arg(long, value_name = "P", value_parser = non_negative_f64, help_heading = "Load pattern")]
    pub(crate) chaos_burst_prob: Option<f64>,

    /// Chaos: probability that a step is a pause [default: 0.05].
    #[arg(long, value_name = "P", value_parser = non_negative_f64, help_heading = "Load pattern")]
    pub(crate) chaos_pause_prob: Option<f64>,

    /// Fixed-interval: each user starts one request per interval.
    #[arg(long, value_name = "DURATION", value_parser = crate::args::duration, help_heading = "Load pattern")]
    pub(crate) interval: Option<Duration>,

    /// Closed loop: user i starts at i × stagger.
    #[arg(long, value_name = "DURATION", value_parser = crate::args::duration, help_heading = "Load pattern")]
    pub(crate) stagger: Option<Duration>,

    /// Stages: duration:target steps, e.g. 30s:10,2m:50,30s:0.
    #[arg(long, value_name = "LIST", help_heading = "Load pattern")]
    pub(crate) stages: Option<String>,
}

/// Default rate when a constant pattern is given neither --rps nor --users.
pub(crate) const DEFAULT_RPS: f64 = 5.0;

/// A validated schedule.
pub(crate) enum Load {
    Open(Box<dyn ArrivalSchedule>),
    Closed(Box<dyn UserSchedule>),
}

impl Load {
    /// How long the pattern naturally lasts, when it ends by itself (stages).
    pub(crate) fn natural_length(args: &PatternArgs) -> Option<Duration> {
        if args.pattern != PatternKind::Stages {
            return None;
        }
        let stages = parse_stages(args.stages.as_deref()?).ok()?;
        Some(stages.iter().map(|s| s.duration).sum())
    }
}

fn non_negative_f64(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(x) if x.is_finite() && x >= 0.0 => Ok(x),
        _ => Err(format!("must be a number >= 0, got '{text}'")),
    }
}

fn rate(text: &str) -> Result<f64, String> {
    parse_rate(text).map_err(|e| e.to_string())
}

/// Which flags each pattern reads; any other pattern flag given is an error.
fn allowed(kind: PatternKind) -> &'static [&'static str] {
    use PatternKind::*;
    match kind {
        Constant => &["rps", "users", "stagger"],
        Poisson => &["rps"],
        Burst => &["rps", "burst-size", "burst-every"],
        Ramp => &[
            "from",
            "to",
            "over",
            "closed-loop",
            "users",
            "spawn-rate",
            "stagger",
        ],
        Spike => &[
            "rps",
            "users",
            "spike-rps",
            "spike-users",
            "spike-duration",
            "spike-every",
            "stagger",
        ],
        Chaos => &[
            "min-rps",
            "max-rps",
            "chaos-step",
            "chaos-volatility",
            "chaos-burst-prob",
            "chaos-pause-prob",
            "burst-size",
        ],
        FixedInterval => &["users", "interval", "stagger"],
        Stages => &["stages", "closed-loop", "stagger"],
    }
}

fn given(a: &PatternArgs) -> Vec<&'static str> {
    let mut out = Vec::new();
    let mut flag = |name: &'static str, set: bool| {
        if set {
            out.push(name);
        }
    };
    flag("rps", a.rps.is_some());
    flag("users", a.users.is_some());
    flag("from", a.from.is_some());
    flag("to", a.to.is_some());
    flag("over", a.over.is_some());
    flag("spawn-rate", a.spawn_rate.is_some());
    flag("closed-loop", a.closed_loop);
    flag("burst-size", a.burst_size.is_some());
    flag("burst-every", a.burst_every.is_some());
    flag("spike-rps", a.spike_rps.is_some());
    flag("spike-users", a.spike_users.is_some());
    flag("spike-duration", a.spike_duration.is_some());
    flag("spike-every", a.spike_every.is_some());
    flag("min-rps", a.min_rps.is_some());
    flag("max-rps", a.max_rps.is_some());
    flag("chaos-step", a.chaos_step.is_some());
    flag("chaos-volatility", a.chaos_volatility.is_some());
    flag("chaos-burst-prob", a.chaos_burst_prob.is_some());
    flag("chaos-pause-prob", a.chaos_pause_prob.is_some());
    flag("interval", a.interval.is_some());
    flag("stagger", a.stagger.is_some());
    flag("stages", a.stages.is_some());
    out
}

fn need<T: Copy>(value: Option<T>, flag: &str, pattern: &str) -> Result<T, String> {
    value.ok_or_else(|| format!("--pattern {pattern} needs --{flag}"))
}

/// Builds the schedule the flags describe, or says in one line what is wrong.
pub(crate) fn build(a: &PatternArgs, seed: u64) -> Result<Load, String> {
    use PatternKind::*;
    let name = a
        .pattern
        .to_possible_value()
        .map(|v| v.get_name().to_owned())
        .unwrap_or_default();
    let name = name.as_str();
    for flag in given(a) {
        if !allowed(a.pattern).contains(&flag) {
            return Err(format!("--{flag} does not apply to --pattern {name}"));
        }
    }
    let e = |err: loadkit_core::schedule::ScheduleError| format!("--pattern {name}: {err}");
    let stagger = a.stagger.unwrap_or_default();
    let load = match a.pattern {
        Constant => match (a.rps, a.users) {
            (Some(_), Some(_)) => {
                return Err(
                    "give either --rps (open loop) or --users (closed loop), not both".into(),
                )
            }
            (_, Some(users)) => Load::Closed(Box::new(
                FixedUsers::new(users).map_err(e)?.with_stagger(stagger),
            )),
            (rps, None) => Load::Open(Box::new(
                ConstantRate::new(rps.unwrap_or(DEFAULT_RPS)).map_err(e)?,
            )),
        },
        Poisson => Load::Open(Box::new(
            PoissonRate::new(need(a.rps, "rps", name)?, seed).map_err(e)?,
        )),
        Burst => {
            let mut s = BurstRate::new(
                need(a.burst_size, "burst-size", name)?,
                need(a.burst_every, "burst-every", name)?,
            )
            .map_err(e)?;
            if let Some(base) = a.rps.filter(|r| *r > 0.0) {
                s = s.with_base_rate(base).map_err(e)?;
            }
            Load::Open(Box::new(s))
        }
        Ramp => match (a.spawn_rate, a.users) {
            (Some(spawn), Some(users)) => Load::Closed(Box::new(
                RampUsers::spawn_rate(users, spawn)
                    .map_err(e)?
                    .with_stagger(stagger),
            )),
            (Some(_), None) => {
                return Err("--spawn-rate needs --users (the final user count)".into())
            }
            (None, Some(_)) => {
                return Err(
                    "--pattern ramp takes --from/--to/--over, or --users with --spawn-rate".into(),
                )
            }
            (None, None) => {
                let (from, to, over) = (
                    need(a.from, "from", name)?,
                    need(a.to, "to", name)?,
                    need(a.over, "over", name)?,
                );
                if a.closed_loop {
                    let whole = |x: f64, flag: &str| -> Result<u32, String> {
                        if x.fract() == 0.0 && x <= f64::from(u32::MAX) {
                            Ok(x as u32)
                        } else {
                            Err(format!(
                                "--{flag} must be a whole number of users with --closed-loop"
                            ))
                        }
                    };
                    Load::Closed(Box::new(
                        RampUsers::new(whole(from, "from")?, whole(to, "to")?, over)
                            .map_err(e)?
                            .with_stagger(stagger),
                    ))
                } else {
                    Load::Open(Box::new(RampRate::new(from, to, over).map_err(e)?))
                }
            }
        },
        Spike => {
            let (duration, every) = (
                need(a.spike_duration, "spike-duration", name)?,
                need(a.spike_every, "spike-every", name)?,
            );
            match (a.spike_rps, a.spike_users) {
                (Some(_), Some(_)) => {
                    return Err(
                        "give --spike-rps (open loop) or --spike-users (closed loop), not both"
                            .into(),
                    )
                }
                (Some(spike), None) => {
                    if a.users.is_some() {
                        return Err(
                            "an open-loop spike takes --rps as its base, not --users".into()
                        );
                    }
                    Load::Open(Box::new(
                        SpikeRate::new(a.rps.unwrap_or(0.0), spike, duration, every).map_err(e)?,
                    ))
                }
                (None, Some(spike)) => {
                    if a.rps.is_some() {
                        return Err(
                            "a closed-loop spike takes --users as its base, not --rps".into()
                        );
                    }
                    Load::Closed(Box::new(
                        SpikeUsers::new(a.users.unwrap_or(0), spike, duration, every)
                            .map_err(e)?
                            .with_stagger(stagger),
                    ))
                }
                (None, None) => {
                    return Err("--pattern spike needs --spike-rps or --spike-users".into())
                }
            }
        }
        Chaos => {
            let mut s = ChaosRate::new(
                need(a.min_rps, "min-rps", name)?,
                need(a.max_rps, "max-rps", name)?,
                seed,
            )
            .map_err(e)?;
            if let Some(step) = a.chaos_step {
                s = s.with_step(step).map_err(e)?;
            }
            if let Some(v) = a.chaos_volatility {
                s = s.with_volatility(v).map_err(e)?;
            }
            if a.chaos_burst_prob.is_some() || a.burst_size.is_some() {
                let size = a
                    .burst_size
                    .unwrap_or_else(|| a.max_rps.unwrap_or(1.0).ceil().max(1.0) as u32);
                s = s
                    .with_bursts(a.chaos_burst_prob.unwrap_or(0.05), size)
                    .map_err(e)?;
            }
            if let Some(p) = a.chaos_pause_prob {
                s = s.with_pauses(p).map_err(e)?;
            }
            Load::Open(Box::new(s))
        }
        FixedInterval => Load::Closed(Box::new(
            loadkit_core::schedule::FixedInterval::new(
                need(a.users, "users", name)?,
                need(a.interval, "interval", name)?,
            )
            .map_err(e)?
            .with_stagger(stagger),
        )),
        Stages => {
            let text = a
                .stages
                .as_deref()
                .ok_or("--pattern stages needs --stages, e.g. 30s:10,2m:50,30s:0")?;
            if a.closed_loop {
                Load::Closed(Box::new(
                    StagesUsers::parse(text).map_err(e)?.with_stagger(stagger),
                ))
            } else {
                Load::Open(Box::new(StagesRate::parse(text).map_err(e)?))
            }
        }
    };
    Ok(load)
}

/// The planned load per second over `horizon`: arrivals (open loop) or peak users (closed).
pub(crate) fn plan(load: &mut Load, horizon: Duration) -> (Vec<u64>, &'static str) {
    match load {
        Load::Open(s) => (plan_arrivals(s, horizon), "requests started per second"),
        Load::Closed(s) => (plan_users(s, horizon), "users active (peak in each second)"),
    }
}

/// A bar chart of `values` (one per second), at most `width` columns and `height` rows; when
/// there are more seconds than columns, each column shows the highest second it covers.
pub(crate) fn chart(values: &[u64], unit: &str, width: usize, height: usize) -> String {
    let mut out = String::new();
    if values.is_empty() {
        return "(nothing planned)\n".to_owned();
    }
    let per = values.len().div_ceil(width.max(1));
    let columns: Vec<u64> = values
        .chunks(per)
        .map(|c| c.iter().copied().max().unwrap_or(0))
        .collect();
    let top = columns.iter().copied().max().unwrap_or(0).max(1);
    let label_width = top.to_string().len().max(3);
    let _ = writeln!(out, "{unit} (each column: {per} s)");
    for row in (1..=height).rev() {
        let threshold = top as f64 * row as f64 / height as f64;
        let label = if row == height {
            top.to_string()
        } else if row == height.div_ceil(2) {
            (top / 2).to_string()
        } else {
            String::new()
        };
        let _ = write!(out, "{label:>label_width$} |");
        for &c in &columns {
            let lower = top as f64 * (row - 1) as f64 / height as f64;
            out.push(if c as f64 >= threshold {
                '#'
            } else if c as f64 > lower {
                '.'
            } else {
                ' '
            });
        }
        out.push('\n');
    }
    let _ = writeln!(out, "{:>label_width$} +{}", 0, "-".repeat(columns.len()));
    let total_s = values.len();
    let _ = writeln!(
        out,
        "{:>label_width$}  0s{:>width$}",
        "",
        format!("{total_s}s"),
        width = columns.len().saturating_sub(2)
    );
    out
}

/// `t_s,value` lines with a header.
pub(crate) fn csv(values: &[u64], column: &str) -> String {
    let mut out = format!("t_s,{column}\n");
    for (t, v) in values.iter().enumerate() {
        let _ = writeln!(out, "{t},{v}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct T {
        #[command(flatten)]
        p: PatternArgs,
    }

    fn load(args: &str) -> Result<Vec<u64>, String> {
        let t = T::try_parse_from(std::iter::once("t").chain(args.split_whitespace()))
            .map_err(|e| e.to_string())?;
        let mut l = build(&t.p, 7)?;
        Ok(plan(&mut l, Duration::from_secs(20)).0)
    }

    #[test]
    fn every_pattern_builds_from_flags() {
        assert_eq!(load("--rps 3").unwrap()[..3], [3, 3, 3]);
        assert_eq!(load("--users 4").unwrap()[0], 4);
        assert!(
            load("--pattern poisson --rps 20")
                .unwrap()
                .iter()
                .sum::<u64>()
                > 300
        );
        assert_eq!(
            load("--pattern burst --burst-size 50 --burst-every 10s").unwrap()[..11],
            [50, 0, 0, 0, 0, 0, 0, 0, 0, 0, 50]
        );
        let ramp = load("--pattern ramp --from 0 --to 10 --over 10s").unwrap();
        assert!(ramp[2] < ramp[8] && ramp[15] == 10, "{ramp:?}");
        let spike =
            load("--pattern spike --rps 2 --spike-rps 20 --spike-duration 2s --spike-every 10s")
                .unwrap();
        assert_eq!(spike[..12], [2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 20, 20]);
        assert!(
            load("--pattern chaos --min-rps 1 --max-rps 30")
                .unwrap()
                .iter()
                .sum::<u64>()
                > 0
        );
        assert_eq!(
            load("--pattern fixed-interval --users 10 --interval 5s").unwrap()[0],
            10
        );
        assert_eq!(
            load("--pattern stages --stages 5s:10,5s:10,5s:0").unwrap()[7],
            10
        );
        assert_eq!(
            load("--pattern stages --stages 5s:10,5s:0 --closed-loop").unwrap()[5],
            10
        );
        assert_eq!(
            load("--pattern ramp --users 10 --spawn-rate 2").unwrap()[6],
            10
        );
    }

    #[test]
    fn bad_pattern_flags_are_one_clear_line() {
        let err = |args: &str| load(args).unwrap_err();
        assert!(err("--pattern ramp --from 0 --to 10 --over 0s").starts_with("--pattern ramp: "));
        assert!(
            err("--pattern burst --burst-size 0 --burst-every 1s").starts_with("--pattern burst: ")
        );
        assert!(err(
            "--pattern spike --rps 10 --spike-rps 5 --spike-duration 1s --spike-every 10s"
        )
        .starts_with("--pattern spike: "));
        assert_eq!(
            err("--pattern burst --burst-size 5"),
            "--pattern burst needs --burst-every"
        );
        assert_eq!(
            err("--burst-size 5"),
            "--burst-size does not apply to --pattern constant"
        );
        assert_eq!(
            err("--rps 1 --users 2"),
            "give either --rps (open loop) or --users (closed loop), not both"
        );
        assert!(err("--pattern stages --stages 2m50").contains("stage 1"));
    }

    #[test]
    fn the_chart_scales_to_its_box() {
        let values: Vec<u64> = (0..300).map(|t| (t / 10) as u64).collect();
        let c = chart(&values, "req/s", 100, 8);
        let rows: Vec<&str> = c.lines().collect();
        assert_eq!(rows.len(), 1 + 8 + 2);
        assert!(rows[1].starts_with(" 29 |"), "{c}");
        assert!(rows.iter().all(|r| r.chars().count() <= 110), "{c}");
        assert_eq!(
            csv(&[1, 2], "planned").lines().collect::<Vec<_>>(),
            ["t_s,planned", "0,1", "1,2"]
        );
    }
}
