//! `PatternSpec`: every load pattern as typed data, and the one place that turns it into a
//! schedule. A front end (flags, a scenario file, a sweep) fills a spec; the library's own
//! defaults apply to what the spec leaves out, so no front end copies them.

use std::time::Duration;

use crate::{
    ArrivalSchedule, BurstRate, ChaosRate, ConstantRate, FixedInterval, FixedUsers, PoissonRate,
    RampRate, RampUsers, ScheduleError, SpikeRate, SpikeUsers, Stage, StagesRate, StagesUsers,
    UserSchedule,
};

/// A load pattern and its parameters; [`build`](Self::build) validates them.
#[derive(Debug, Clone, PartialEq)]
pub enum PatternSpec {
    /// A fixed arrival rate.
    ConstantRate {
        /// Requests per second.
        rps: f64,
    },
    /// A fixed number of closed-loop users.
    ConstantUsers {
        /// Users.
        users: u32,
        /// User `i` starts at `i × stagger`.
        stagger: Duration,
    },
    /// Exponential gaps at a mean rate.
    Poisson {
        /// Mean requests per second.
        rps: f64,
        /// Seed of the gaps.
        seed: u64,
    },
    /// `size` arrivals at once every `every`, on top of an optional base rate.
    Burst {
        /// Arrivals per burst.
        size: u32,
        /// Time between bursts.
        every: Duration,
        /// A constant rate between the bursts.
        base_rps: Option<f64>,
    },
    /// A linear rate ramp, then hold.
    RampRate {
        /// Starting rate.
        from: f64,
        /// Final rate, held after `over`.
        to: f64,
        /// Length of the ramp.
        over: Duration,
    },
    /// A linear user ramp, then hold.
    RampUsers {
        /// Starting users.
        from: u32,
        /// Final users.
        to: u32,
        /// Length of the ramp.
        over: Duration,
        /// User `i` starts at `i × stagger`.
        stagger: Duration,
    },
    /// `users` users started at `spawn_rate` users per second.
    SpawnUsers {
        /// Final users.
        users: u32,
        /// Users started per second.
        spawn_rate: f64,
        /// User `i` starts at `i × stagger`.
        stagger: Duration,
    },
    /// A base rate jumping to `spike` for `duration` every `every`.
    SpikeRate {
        /// Rate between spikes.
        base: f64,
        /// Rate during a spike.
        spike: f64,
        /// Length of a spike.
        duration: Duration,
        /// Spike start to spike start (the first at this offset).
        every: Duration,
    },
    /// Base users jumping to `spike` users for `duration` every `every`.
    SpikeUsers {
        /// Users between spikes.
        base: u32,
        /// Users during a spike.
        spike: u32,
        /// Length of a spike.
        duration: Duration,
        /// Spike start to spike start.
        every: Duration,
        /// User `i` starts at `i × stagger`.
        stagger: Duration,
    },
    /// A seeded random walk of the rate with bursts and pauses; `None` fields keep
    /// [`ChaosRate`]'s defaults.
    Chaos {
        /// Lowest rate.
        min_rps: f64,
        /// Highest rate.
        max_rps: f64,
        /// The walk's seed.
        seed: u64,
        /// Length of one step.
        step: Option<Duration>,
        /// Largest change per step, as a fraction of max − min.
        volatility: Option<f64>,
        /// Probability that a step holds a burst.
        burst_probability: Option<f64>,
        /// Arrivals per burst.
        burst_size: Option<u32>,
        /// Probability that a step is a pause.
        pause_probability: Option<f64>,
    },
    /// `users` users each starting one request every `interval`.
    FixedInterval {
        /// Users.
        users: u32,
        /// Time between a user's starts.
        interval: Duration,
        /// User `i` starts at `i × stagger`.
        stagger: Duration,
    },
    /// Rate stages (`duration:target` steps from 0).
    StagesRate {
        /// The steps.
        stages: Vec<Stage>,
    },
    /// User stages.
    StagesUsers {
        /// The steps.
        stages: Vec<Stage>,
        /// User `i` starts at `i × stagger`.
        stagger: Duration,
    },
}

/// A built schedule: open loop (arrivals) or closed loop (users).
pub enum Schedule {
    /// Arrivals.
    Open(Box<dyn ArrivalSchedule>),
    /// Users.
    Closed(Box<dyn UserSchedule>),
}

impl std::fmt::Debug for Schedule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Schedule::Open(s) => write!(f, "Open({})", s.pattern().kind),
            Schedule::Closed(s) => write!(f, "Closed({})", s.pattern().kind),
        }
    }
}

impl PatternSpec {
    /// The schedule this spec describes.
    ///
    /// # Errors
    ///
    /// A parameter is out of range: the error says which and why.
    pub fn build(&self) -> Result<Schedule, ScheduleError> {
        use PatternSpec as P;
        let open = |s: Box<dyn ArrivalSchedule>| Ok(Schedule::Open(s));
        let closed = |s: Box<dyn UserSchedule>| Ok(Schedule::Closed(s));
        match self.clone() {
            P::ConstantRate { rps } => open(Box::new(ConstantRate::new(rps)?)),
            P::ConstantUsers { users, stagger } => {
                closed(Box::new(FixedUsers::new(users)?.with_stagger(stagger)))
            }
            P::Poisson { rps, seed } => open(Box::new(PoissonRate::new(rps, seed)?)),
            P::Burst {
                size,
                every,
                base_rps,
            } => {
                let mut s = BurstRate::new(size, every)?;
                if let Some(base) = base_rps.filter(|r| *r > 0.0) {
                    s = s.with_base_rate(base)?;
                }
                open(Box::new(s))
            }
            P::RampRate { from, to, over } => open(Box::new(RampRate::new(from, to, over)?)),
            P::RampUsers {
                from,
                to,
                over,
                stagger,
            } => closed(Box::new(
                RampUsers::new(from, to, over)?.with_stagger(stagger),
            )),
            P::SpawnUsers {
                users,
                spawn_rate,
                stagger,
            } => closed(Box::new(
                RampUsers::spawn_rate(users, spawn_rate)?.with_stagger(stagger),
            )),
            P::SpikeRate {
                base,
                spike,
                duration,
                every,
            } => open(Box::new(SpikeRate::new(base, spike, duration, every)?)),
            P::SpikeUsers {
                base,
                spike,
                duration,
                every,
                stagger,
            } => closed(Box::new(
                SpikeUsers::new(base, spike, duration, every)?.with_stagger(stagger),
            )),
            P::Chaos {
                min_rps,
                max_rps,
                seed,
                step,
                volatility,
                burst_probability,
                burst_size,
                pause_probability,
            } => {
                let mut s = ChaosRate::new(min_rps, max_rps, seed)?;
                if let Some(step) = step {
                    s = s.with_step(step)?;
                }
                if let Some(v) = volatility {
                    s = s.with_volatility(v)?;
                }
                if let Some(p) = burst_probability {
                    s = s.with_burst_probability(p)?;
                }
                if let Some(n) = burst_size {
                    s = s.with_burst_size(n)?;
                }
                if let Some(p) = pause_probability {
                    s = s.with_pauses(p)?;
                }
                open(Box::new(s))
            }
            P::FixedInterval {
                users,
                interval,
                stagger,
            } => closed(Box::new(
                FixedInterval::new(users, interval)?.with_stagger(stagger),
            )),
            P::StagesRate { stages } => open(Box::new(StagesRate::new(stages)?)),
            P::StagesUsers { stages, stagger } => {
                closed(Box::new(StagesUsers::new(stages)?.with_stagger(stagger)))
            }
        }
    }

    /// How long the pattern lasts when it ends by itself (stages), else `None`.
    pub fn natural_length(&self) -> Option<Duration> {
        match self {
            PatternSpec::StagesRate { stages } | PatternSpec::StagesUsers { stages, .. } => {
                Some(stages.iter().map(|s| s.duration).sum())
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_build_their_schedules_and_report_errors() {
        let s = PatternSpec::ConstantRate { rps: 5.0 }.build().unwrap();
        assert!(matches!(s, Schedule::Open(_)));
        let e = PatternSpec::ConstantRate { rps: -1.0 }.build().unwrap_err();
        assert!(
            e.to_string().contains("rps") || e.to_string().contains("rate"),
            "{e}"
        );
        let stages = crate::parse_stages("30s:10,1m:0").unwrap();
        let spec = PatternSpec::StagesUsers {
            stages,
            stagger: Duration::ZERO,
        };
        assert_eq!(spec.natural_length(), Some(Duration::from_secs(90)));
        assert!(matches!(spec.build().unwrap(), Schedule::Closed(_)));
    }

    #[test]
    fn chaos_keeps_the_library_defaults_for_what_is_left_out() {
        // Only the burst size is given: the default burst probability stays (0.05), so bursts
        // still happen; a front end copying 0.05 is no longer needed.
        let spec = |size| PatternSpec::Chaos {
            min_rps: 1.0,
            max_rps: 10.0,
            seed: 7,
            step: None,
            volatility: None,
            burst_probability: None,
            burst_size: size,
            pause_probability: None,
        };
        let bursts = |s: Schedule| {
            let Schedule::Open(s) = s else { panic!() };
            let mut s = s;
            let mut times = Vec::new();
            while let Some(t) = s.next_arrival() {
                if t > Duration::from_secs(600) {
                    break;
                }
                times.push(t);
            }
            times.windows(50).filter(|w| w[0] == w[49]).count()
        };
        assert!(
            bursts(spec(Some(50)).build().unwrap()) > 0,
            "bursts of 50 happen"
        );
        assert_eq!(
            bursts(spec(None).build().unwrap()),
            0,
            "default bursts are 10 wide"
        );
    }
}
