//! The planned load of a schedule, drawn: a bar chart per second for the terminal and the
//! same values as CSV (`loadkit plan`, `run --dry-run`).

use std::fmt::Write as _;

/// A bar chart of `values` (one per second), at most `width` columns and `height` rows; when
/// there are more seconds than columns, each column shows the highest second it covers.
pub fn plan_chart(values: &[u64], unit: &str, width: usize, height: usize) -> String {
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
pub fn plan_csv(values: &[u64], column: &str) -> String {
    let mut out = format!("t_s,{column}\n");
    for (t, v) in values.iter().enumerate() {
        let _ = writeln!(out, "{t},{v}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chart_scales_to_its_box() {
        let values: Vec<u64> = (0..300).map(|t| (t / 10) as u64).collect();
        let c = plan_chart(&values, "req/s", 100, 8);
        let rows: Vec<&str> = c.lines().collect();
        assert_eq!(rows.len(), 1 + 8 + 2);
        assert!(rows[1].starts_with(" 29 |"), "{c}");
        assert!(rows.iter().all(|r| r.chars().count() <= 110), "{c}");
        assert_eq!(
            plan_csv(&[1, 2], "planned").lines().collect::<Vec<_>>(),
            ["t_s,planned", "0,1", "1,2"]
        );
    }
}
