//! `--pattern` and its flags, validated into a `PatternSpec` that loadkit-schedule builds, and
//! the planned load per second of a schedule.

use std::time::Duration;

use clap::{Args, ValueEnum};
use loadkit_core::schedule::{
    parse_rate, parse_stages, plan_arrivals, plan_users, PatternSpec, Schedule,
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

/// How long the pattern naturally lasts, when it ends by itself (stages).
pub(crate) fn natural_length(args: &PatternArgs) -> Option<Duration> {
    spec(args, 0).ok()?.natural_length()
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

/// The pattern the flags describe, as typed data, or what is wrong in one line.
pub(crate) fn spec(a: &PatternArgs, seed: u64) -> Result<PatternSpec, String> {
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
    let stagger = a.stagger.unwrap_or_default();
    let spec = match a.pattern {
        Constant => match (a.rps, a.users) {
            (Some(_), Some(_)) => {
                return Err(
                    "give either --rps (open loop) or --users (closed loop), not both".into(),
                )
            }
            (_, Some(users)) => PatternSpec::ConstantUsers { users, stagger },
            (rps, None) => PatternSpec::ConstantRate {
                rps: rps.unwrap_or(DEFAULT_RPS),
            },
        },
        Poisson => PatternSpec::Poisson {
            rps: need(a.rps, "rps", name)?,
            seed,
        },
        Burst => PatternSpec::Burst {
            size: need(a.burst_size, "burst-size", name)?,
            every: need(a.burst_every, "burst-every", name)?,
            base_rps: a.rps,
        },
        Ramp => match (a.spawn_rate, a.users) {
            (Some(spawn_rate), Some(users)) => PatternSpec::SpawnUsers {
                users,
                spawn_rate,
                stagger,
            },
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
                    PatternSpec::RampUsers {
                        from: whole(from, "from")?,
                        to: whole(to, "to")?,
                        over,
                        stagger,
                    }
                } else {
                    PatternSpec::RampRate { from, to, over }
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
                    PatternSpec::SpikeRate {
                        base: a.rps.unwrap_or(0.0),
                        spike,
                        duration,
                        every,
                    }
                }
                (None, Some(spike)) => {
                    if a.rps.is_some() {
                        return Err(
                            "a closed-loop spike takes --users as its base, not --rps".into()
                        );
                    }
                    PatternSpec::SpikeUsers {
                        base: a.users.unwrap_or(0),
                        spike,
                        duration,
                        every,
                        stagger,
                    }
                }
                (None, None) => {
                    return Err("--pattern spike needs --spike-rps or --spike-users".into())
                }
            }
        }
        Chaos => PatternSpec::Chaos {
            min_rps: need(a.min_rps, "min-rps", name)?,
            max_rps: need(a.max_rps, "max-rps", name)?,
            seed,
            step: a.chaos_step,
            volatility: a.chaos_volatility,
            burst_probability: a.chaos_burst_prob,
            burst_size: a.burst_size,
            pause_probability: a.chaos_pause_prob,
        },
        FixedInterval => PatternSpec::FixedInterval {
            users: need(a.users, "users", name)?,
            interval: need(a.interval, "interval", name)?,
            stagger,
        },
        Stages => {
            let text = a
                .stages
                .as_deref()
                .ok_or("--pattern stages needs --stages, e.g. 30s:10,2m:50,30s:0")?;
            let stages = parse_stages(text).map_err(|e| format!("--pattern {name}: {e}"))?;
            if a.closed_loop {
                PatternSpec::StagesUsers { stages, stagger }
            } else {
                PatternSpec::StagesRate { stages }
            }
        }
    };
    Ok(spec)
}

/// Builds the schedule the flags describe, or says in one line what is wrong.
pub(crate) fn build(a: &PatternArgs, seed: u64) -> Result<Schedule, String> {
    let spec = spec(a, seed)?;
    let name = a
        .pattern
        .to_possible_value()
        .map(|v| v.get_name().to_owned())
        .unwrap_or_default();
    spec.build().map_err(|e| format!("--pattern {name}: {e}"))
}

/// The planned load per second over `horizon`: arrivals (open loop) or peak users (closed).
pub(crate) fn plan(load: &mut Schedule, horizon: Duration) -> (Vec<u64>, &'static str) {
    match load {
        Schedule::Open(s) => (plan_arrivals(s, horizon), "requests started per second"),
        Schedule::Closed(s) => (plan_users(s, horizon), "users active (peak in each second)"),
    }
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
}
