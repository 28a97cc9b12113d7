//! Medians, spreads and verdicts of the report.

/// Median and spread of a sample.
#[derive(Debug, Clone, Copy)]
pub struct Stat {
    /// Median (NaN of no sample).
    pub median: f64,
    /// Smallest.
    pub min: f64,
    /// Largest.
    pub max: f64,
}

/// Median and spread of `v`.
pub fn stat(v: &[f64]) -> Stat {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    let median = if n == 0 {
        f64::NAN
    } else if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    };
    Stat { median, min: s.first().copied().unwrap_or(f64::NAN), max: s.last().copied().unwrap_or(f64::NAN) }
}

/// `median (min–max)`, or one figure when they agree.
pub fn fmt_stat(s: Stat, digits: usize) -> String {
    if s.min == s.max {
        format!("{:.digits$}", s.median)
    } else {
        format!("{:.digits$} ({:.digits$}–{:.digits$})", s.median, s.min, s.max)
    }
}

/// How a sample stands against a bound: `median M, max X`. A bound is met only if every run
/// meets it, so verdicts on bounds use [`Stat::max`], never the median.
pub fn fmt_bound(s: Stat, digits: usize) -> String {
    format!("median {:.digits$}, max {:.digits$}", s.median, s.max)
}

/// `met` or `missed`, in the report's words.
pub fn verdict(met: bool) -> &'static str {
    if met { "**met**" } else { "**missed** (see the notes below)" }
}
