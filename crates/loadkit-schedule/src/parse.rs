//! Text forms of pattern parameters: durations (`500ms`, `30s`, `1m30s`), rates (`5/s`) and
//! stage lists (`30s:10,2m:50,30s:0`), with the inverse `format_duration`.

use std::time::Duration;

use crate::num::from_nanos;
use crate::pattern::{err, ScheduleError};
use crate::stages::Stage;

const UNITS: [(&str, u128); 7] = [
    ("h", 3_600_000_000_000),
    ("m", 60_000_000_000),
    ("s", 1_000_000_000),
    ("ms", 1_000_000),
    ("us", 1_000),
    ("µs", 1_000),
    ("ns", 1),
];

/// Parses a duration written as one or more `NUMBER UNIT` parts, largest unit first, each unit
/// at most once: `500ms`, `30s`, `2m`, `1h`, `1m30s`, `1.5s`, `0s`. Units are `h`, `m`, `s`,
/// `ms`, `us` (or `µs`) and `ns`. A bare number without a unit is rejected (`30` is ambiguous).
/// Fractions are exact to the nanosecond (digits beyond it are dropped).
///
/// ```
/// use loadkit_schedule::parse_duration;
/// use std::time::Duration;
///
/// assert_eq!(parse_duration("1m30s").unwrap(), Duration::from_secs(90));
/// assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
/// assert!(parse_duration("30").unwrap_err().to_string().contains("missing unit"));
/// ```
pub fn parse_duration(text: &str) -> Result<Duration, ScheduleError> {
    let fail = |why: String| err(format!("invalid duration \"{text}\": {why}"));
    let s = text.trim();
    if s.is_empty() {
        return fail("it is empty (write e.g. 30s, 500ms, 2m or 1m30s)".into());
    }
    let mut rest = s;
    let mut total: u128 = 0;
    let mut previous_rank: Option<usize> = None;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (number, after) = rest.split_at(number_len);
        if number.is_empty() {
            return fail(format!("expected a number before \"{after}\""));
        }
        let unit_len = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_len);
        if unit.is_empty() {
            return fail(format!(
                "missing unit after {number} (use h, m, s, ms, us or ns)"
            ));
        }
        let Some(index) = UNITS.iter().position(|(name, _)| *name == unit) else {
            return fail(format!(
                "unknown unit \"{unit}\" (use h, m, s, ms, us or ns)"
            ));
        };
        // `us` and `µs` are one unit, so they share a rank.
        let rank = if index >= 5 { index - 1 } else { index };
        if previous_rank.is_some_and(|p| rank <= p) {
            return fail("units must go from the largest to the smallest, each once".into());
        }
        previous_rank = Some(rank);
        let Some(part) = decimal_times(number, UNITS[index].1) else {
            return fail(format!("\"{number}\" is not a number"));
        };
        let Some(sum) = total.checked_add(part) else {
            return fail("it is too long".into());
        };
        total = sum;
        rest = after;
    }
    if total / 1_000_000_000 > u128::from(u64::MAX) {
        return fail("it is too long".into());
    }
    Ok(from_nanos(total))
}

/// `number` (digits with at most one `.`) times `unit` nanoseconds, truncated to a whole
/// nanosecond; `None` if it is not such a number or overflows.
fn decimal_times(number: &str, unit: u128) -> Option<u128> {
    let (int, frac) = number.split_once('.').unwrap_or((number, ""));
    if (int.is_empty() && frac.is_empty()) || frac.contains('.') {
        return None;
    }
    let mut value: u128 = 0;
    for d in int.bytes() {
        value = value.checked_mul(10)?.checked_add(u128::from(d - b'0'))?;
    }
    let mut value = value.checked_mul(unit)?;
    let (mut frac_value, mut scale): (u128, u128) = (0, 1);
    for d in frac.bytes().take(18) {
        frac_value = frac_value * 10 + u128::from(d - b'0');
        scale *= 10;
    }
    value = value.checked_add(frac_value * unit / scale)?;
    Some(value)
}

/// Writes `d` in the form [`parse_duration`] reads back exactly: `0s`, `500ms`, `1m30s`,
/// `2h`, `1s250us`.
pub fn format_duration(d: Duration) -> String {
    let mut n = d.as_nanos();
    if n == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    for (name, unit) in UNITS.iter().filter(|(name, _)| *name != "µs") {
        let count = n / unit;
        if count > 0 {
            out.push_str(&format!("{count}{name}"));
            n %= unit;
        }
    }
    out
}

/// Parses a rate: a non-negative number, optionally per unit of time: `5`, `5/s`, `300/m`,
/// `0.5/s`, `3600/h` (also `/sec` and `/min`). Returns events per second.
///
/// ```
/// assert_eq!(loadkit_schedule::parse_rate("300/m").unwrap(), 5.0);
/// ```
pub fn parse_rate(text: &str) -> Result<f64, ScheduleError> {
    let s = text.trim();
    let (number, per) = s.split_once('/').unwrap_or((s, "s"));
    let seconds = match per.trim() {
        "s" | "sec" => 1.0,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        other => {
            return err(format!(
                "invalid rate \"{text}\": unknown unit \"/{other}\" (use /s, /m or /h)"
            ))
        }
    };
    match number.trim().parse::<f64>() {
        Ok(x) if x.is_finite() && x >= 0.0 => Ok(x / seconds),
        _ => err(format!(
            "invalid rate \"{text}\": expected a non-negative number such as 5/s"
        )),
    }
}

/// Parses a k6-style stage list: comma-separated `DURATION:TARGET` steps, such as
/// `30s:10,2m:50,30s:0`. Targets are non-negative numbers (requests per second for open-loop
/// stages, users for closed-loop stages, which also require whole numbers).
///
/// ```
/// use loadkit_schedule::parse_stages;
/// use std::time::Duration;
///
/// let stages = parse_stages("30s:10, 2m:50").unwrap();
/// assert_eq!(stages[1].duration, Duration::from_secs(120));
/// assert_eq!(stages[1].target, 50.0);
/// ```
pub fn parse_stages(text: &str) -> Result<Vec<Stage>, ScheduleError> {
    const EXAMPLE: &str = "such as 30s:10,2m:50,30s:0";
    if text.trim().is_empty() {
        return err(format!(
            "no stages given: expected DURATION:TARGET steps {EXAMPLE}"
        ));
    }
    let mut stages = Vec::new();
    for (i, part) in text.split(',').enumerate() {
        let n = i + 1;
        let part = part.trim();
        if part.is_empty() {
            return err(format!(
                "stage {n} is empty: expected DURATION:TARGET steps {EXAMPLE}"
            ));
        }
        let Some((duration, target)) = part.split_once(':') else {
            return err(format!(
                "stage {n} (\"{part}\"): expected DURATION:TARGET {EXAMPLE}"
            ));
        };
        let duration = parse_duration(duration)
            .map_err(|e| ScheduleError(format!("stage {n} (\"{part}\"): {e}")))?;
        let target = match target.trim().parse::<f64>() {
            Ok(x) if x.is_finite() && x >= 0.0 => x,
            _ => {
                return err(format!(
                    "stage {n} (\"{part}\"): target \"{}\" is not a non-negative number",
                    target.trim()
                ))
            }
        };
        stages.push(Stage { duration, target });
    }
    Ok(stages)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: fn(u64) -> Duration = Duration::from_millis;

    fn check_duration(input: &str, expect: Result<Duration, &str>) {
        match (parse_duration(input), expect) {
            (Ok(got), Ok(want)) => assert_eq!(got, want, "{input}"),
            (Err(got), Err(want)) => {
                assert!(
                    got.to_string().contains(want),
                    "{input}: {got} lacks {want:?}"
                )
            }
            (got, want) => panic!("{input}: got {got:?}, expected {want:?}"),
        }
    }

    #[test]
    fn durations_parse() {
        let ok = [
            ("500ms", MS(500)),
            ("30s", MS(30_000)),
            ("2m", MS(120_000)),
            ("1h", MS(3_600_000)),
            ("1m30s", MS(90_000)),
            ("1h2m3s4ms", MS(3_723_004)),
            ("1.5s", MS(1500)),
            ("0.25m", MS(15_000)),
            (".5s", MS(500)),
            ("0s", Duration::ZERO),
            ("  10s ", MS(10_000)),
            ("250us", Duration::from_micros(250)),
            ("250µs", Duration::from_micros(250)),
            ("7ns", Duration::from_nanos(7)),
            ("1.0000000015s", Duration::from_nanos(1_000_000_001)),
        ];
        for (input, expect) in ok {
            check_duration(input, Ok(expect));
        }
    }

    #[test]
    fn bad_durations_say_what_is_wrong() {
        let bad = [
            ("", "empty"),
            ("30", "missing unit after 30"),
            ("30x", "unknown unit \"x\""),
            ("s", "expected a number"),
            ("30s1m", "largest to the smallest"),
            ("1s1s", "largest to the smallest"),
            ("1.2.3s", "not a number"),
            ("-5s", "expected a number"),
            ("1m 30s", "unknown unit \"m \""),
            ("99999999999999999999999h", "too long"),
        ];
        for (input, expect) in bad {
            check_duration(input, Err(expect));
        }
    }

    #[test]
    fn formatted_durations_parse_back_exactly() {
        let cases = [
            (Duration::ZERO, "0s"),
            (MS(500), "500ms"),
            (MS(90_000), "1m30s"),
            (MS(7_200_000), "2h"),
            (Duration::new(1, 250_000), "1s250us"),
            (Duration::new(3_725, 7), "1h2m5s7ns"),
        ];
        for (d, text) in cases {
            assert_eq!(format_duration(d), text);
            assert_eq!(parse_duration(text).unwrap(), d);
        }
    }

    #[test]
    fn rates_parse() {
        let ok = [
            ("5", 5.0),
            ("5/s", 5.0),
            ("300/m", 5.0),
            ("0.5/sec", 0.5),
            ("3600/h", 1.0),
        ];
        for (input, expect) in ok {
            assert_eq!(parse_rate(input).unwrap(), expect, "{input}");
        }
        for (input, expect) in [
            ("5/d", "unknown unit"),
            ("-1/s", "non-negative"),
            ("x", "non-negative"),
        ] {
            let e = parse_rate(input).unwrap_err().to_string();
            assert!(e.contains(expect), "{input}: {e}");
        }
    }

    #[test]
    fn stages_parse() {
        let stages = parse_stages("30s:10,2m:50, 30s:0 ,0s:2.5").unwrap();
        let got: Vec<(Duration, f64)> = stages.iter().map(|s| (s.duration, s.target)).collect();
        assert_eq!(
            got,
            [
                (MS(30_000), 10.0),
                (MS(120_000), 50.0),
                (MS(30_000), 0.0),
                (MS(0), 2.5)
            ]
        );
    }

    #[test]
    fn bad_stages_say_which_stage_and_why() {
        let bad = [
            ("", "no stages given"),
            ("  ", "no stages given"),
            ("30s:10,", "stage 2 is empty"),
            ("30s", "stage 1 (\"30s\"): expected DURATION:TARGET"),
            (
                "30s:10,2m50",
                "stage 2 (\"2m50\"): expected DURATION:TARGET",
            ),
            (
                "30:10",
                "stage 1 (\"30:10\"): invalid duration \"30\": missing unit",
            ),
            ("30s:ten", "target \"ten\" is not a non-negative number"),
            ("30s:-1", "target \"-1\" is not a non-negative number"),
            ("30s:NaN", "target \"NaN\" is not a non-negative number"),
        ];
        for (input, expect) in bad {
            let e = parse_stages(input).unwrap_err().to_string();
            assert!(e.contains(expect), "{input:?}: {e}");
        }
    }
}
