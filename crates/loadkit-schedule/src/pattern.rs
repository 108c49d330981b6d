//! `Pattern`: the self-description of a schedule (kind and parameters) for reports, and
//! `ScheduleError` for invalid parameters.

use std::fmt;
use std::time::Duration;

/// A parameter value of a load pattern.
#[derive(Debug, Clone, PartialEq)]
pub enum ParamValue {
    /// A rate, a ratio or another real number.
    Float(f64),
    /// A count.
    Int(u64),
    /// A duration.
    Duration(Duration),
    /// Free text (e.g. a list of stages).
    Text(String),
}

/// What a schedule is: its kind (`constant`, `fixed-interval`, ...) and every parameter that
/// shapes it, in a stable order. Reports carry this so a run can be reproduced.
#[derive(Debug, Clone, PartialEq)]
pub struct Pattern {
    /// The pattern's name, as the CLI's `--pattern` takes it.
    pub kind: &'static str,
    /// `true` for open loop (arrival rate), `false` for closed loop (users).
    pub open_loop: bool,
    /// Every parameter, by name.
    pub params: Vec<(&'static str, ParamValue)>,
}

/// A schedule parameter is out of range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduleError(pub String);

impl fmt::Display for ScheduleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ScheduleError {}

pub(crate) fn positive_rate(name: &str, rate: f64) -> Result<f64, ScheduleError> {
    if rate.is_finite() && rate > 0.0 {
        Ok(rate)
    } else {
        Err(ScheduleError(format!("{name} must be a positive number of requests per second, got {rate}")))
    }
}
