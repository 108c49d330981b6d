//! `Pattern`: the self-description of a schedule (kind and parameters) for reports, and
//! `ScheduleError` for invalid parameters, with the shared parameter checks.

use std::fmt;
use std::time::Duration;

use crate::parse::format_duration;

/// A parameter value of a load pattern.
#[derive(Debug, Clone, PartialEq)]
pub enum ParamValue {
    /// A rate, a ratio or another real number.
    Float(f64),
    /// A count (or a seed).
    Int(u64),
    /// A duration.
    Duration(Duration),
    /// Free text (e.g. a list of stages).
    Text(String),
}

impl fmt::Display for ParamValue {
    /// The value as the CLI would take it back: `2.5`, `10`, `1m30s`, `30s:10,1m:0`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParamValue::Float(x) => write!(f, "{x}"),
            ParamValue::Int(n) => write!(f, "{n}"),
            ParamValue::Duration(d) => f.write_str(&format_duration(*d)),
            ParamValue::Text(s) => f.write_str(s),
        }
    }
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

impl Pattern {
    /// The value of parameter `name`, if the pattern has it.
    pub fn param(&self, name: &str) -> Option<&ParamValue> {
        self.params.iter().find(|(n, _)| *n == name).map(|(_, v)| v)
    }
}

/// A schedule parameter is out of range, or a pattern's text form does not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduleError(pub String);

impl fmt::Display for ScheduleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ScheduleError {}

pub(crate) fn err<T>(message: impl Into<String>) -> Result<T, ScheduleError> {
    Err(ScheduleError(message.into()))
}

/// A rate that must be above zero (and finite).
pub(crate) fn positive_rate(name: &str, rate: f64) -> Result<f64, ScheduleError> {
    if rate.is_finite() && rate > 0.0 {
        Ok(rate)
    } else {
        err(format!(
            "{name} must be a positive number of requests per second, got {rate}"
        ))
    }
}

/// A rate that may be zero but not negative, NaN or infinite.
pub(crate) fn non_negative_rate(name: &str, rate: f64) -> Result<f64, ScheduleError> {
    if rate.is_finite() && rate >= 0.0 {
        Ok(rate)
    } else {
        err(format!(
            "{name} must be a non-negative number of requests per second, got {rate}"
        ))
    }
}

/// A duration that must be longer than zero.
pub(crate) fn positive_duration(name: &str, d: Duration) -> Result<Duration, ScheduleError> {
    if d.is_zero() {
        err(format!("{name} must be longer than zero"))
    } else {
        Ok(d)
    }
}

/// A probability in `[0, 1]`.
pub(crate) fn probability(name: &str, p: f64) -> Result<f64, ScheduleError> {
    if (0.0..=1.0).contains(&p) {
        Ok(p)
    } else {
        err(format!("{name} must be between 0 and 1, got {p}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_reject_what_they_should_with_the_parameter_name() {
        for bad in [-1.0, f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            let e = non_negative_rate("ramp from", bad).unwrap_err().to_string();
            assert!(
                e.starts_with("ramp from must be a non-negative number"),
                "{e}"
            );
        }
        assert_eq!(non_negative_rate("x", 0.0), Ok(0.0));
        assert!(positive_rate("x", 0.0).is_err());
        assert!(positive_duration("ramp over", Duration::ZERO)
            .unwrap_err()
            .to_string()
            .contains("ramp over must be longer than zero"));
        for bad in [-0.1, 1.1, f64::NAN] {
            assert!(probability("p", bad).is_err());
        }
    }

    #[test]
    fn param_values_print_in_cli_form() {
        let cases = [
            (ParamValue::Float(2.5), "2.5"),
            (ParamValue::Float(10.0), "10"),
            (ParamValue::Int(7), "7"),
            (ParamValue::Duration(Duration::from_secs(90)), "1m30s"),
            (ParamValue::Text("30s:10".into()), "30s:10"),
        ];
        for (value, expect) in cases {
            assert_eq!(value.to_string(), expect);
        }
    }
}
