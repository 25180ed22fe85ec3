//! Gaps in a dated series: where consecutive dates are not one period
//! apart (a missing reading, a daylight-saving hour, a repeated or
//! out-of-order date). As pandas users and Keras'
//! `timeseries_dataset_from_array` users expect, windows are built only
//! from evenly spaced runs by default; the policy can refuse gaps instead,
//! or fill single missing steps.

/// What `load_series` does where consecutive dates are not one period apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Gaps {
    /// Windows come only from evenly spaced runs of rows; those that would
    /// span a gap are left out, and [`GapReport`] counts them.
    #[default]
    Skip,
    /// Any gap is an error naming its line.
    Error,
    /// A single missing step is filled by linear interpolation between its
    /// neighbours (features and target); longer gaps are skipped as
    /// [`Gaps::Skip`] does.
    Interpolate,
}

/// What the gap policy found and did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct GapReport {
    /// Places where consecutive dates are not one period apart.
    pub gaps: usize,
    /// Missing steps filled by interpolation.
    pub filled: usize,
    /// Windows that would have spanned a gap, left out.
    pub windows_left_out: usize,
    /// The series' period (its most common step), in days; 0 without dates.
    pub period_days: f64,
}

impl std::fmt::Display for GapReport {
    /// One line: `12 windows left out across 3 gaps in the dates (period 1
    /// hour); 1 missing step filled`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} window{} left out across {} gap{} in the dates (period {})",
            self.windows_left_out,
            plural(self.windows_left_out),
            self.gaps,
            plural(self.gaps),
            duration_text(self.period_days)
        )?;
        if self.filled > 0 {
            write!(
                f,
                "; {} missing step{} filled",
                self.filled,
                plural(self.filled)
            )?;
        }
        Ok(())
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// A duration given in days, in the largest unit that writes it whole:
/// `1 day`, `2 hours`, `15 minutes`, `1.5 seconds`.
pub fn duration_text(days: f64) -> String {
    let units = [("day", 1.0), ("hour", 24.0), ("minute", 1440.0)];
    for (name, per_day) in units {
        let n = days * per_day;
        if n.round() >= 1.0 && (n - n.round()).abs() < 1e-6 {
            let n = n.round() as u64;
            return format!("{n} {name}{}", if n == 1 { "" } else { "s" });
        }
    }
    let seconds = days * 86_400.0;
    let text = format!("{seconds:.3}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    format!("{text} second{}", if text == "1" { "" } else { "s" })
}

/// Two steps are the same within a millisecond.
const SAME: f64 = 1e-3 / 86_400.0;

/// The most common positive step between consecutive `stamps` (days), the
/// smaller on a tie; `None` when no step is positive.
pub(crate) fn period(stamps: &[f64]) -> Option<f64> {
    let mut steps: Vec<f64> = stamps
        .windows(2)
        .map(|w| w[1] - w[0])
        .filter(|&d| d > SAME)
        .collect();
    steps.sort_by(f64::total_cmp);
    let mut best: Option<(usize, f64)> = None;
    let mut i = 0;
    while i < steps.len() {
        let j = i + steps[i..]
            .iter()
            .take_while(|&&d| d - steps[i] <= SAME)
            .count();
        if best.is_none_or(|(n, _)| j - i > n) {
            best = Some((j - i, steps[i]));
        }
        i = j;
    }
    best.map(|(_, step)| step)
}

/// How the step from one row to the next compares with the period.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Step {
    /// One period: the rows continue a run.
    Regular,
    /// Two periods: one step is missing.
    OneMissing,
    /// Anything else: more missing, repeated or going back.
    Break,
}

pub(crate) fn classify(step: f64, period: f64) -> Step {
    if (step - period).abs() <= SAME {
        Step::Regular
    } else if (step - 2.0 * period).abs() <= SAME {
        Step::OneMissing
    } else {
        Step::Break
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_in_the_dates_units() {
        assert_eq!(duration_text(1.0), "1 day");
        assert_eq!(duration_text(1.0 / 24.0), "1 hour");
        assert_eq!(duration_text(0.041_666_666_666_060_34), "1 hour");
        assert_eq!(duration_text(2.0 / 24.0), "2 hours");
        assert_eq!(duration_text(15.0 / 1440.0), "15 minutes");
        assert_eq!(duration_text(1.5 / 86_400.0), "1.5 seconds");
        assert_eq!(duration_text(7.0), "7 days");
    }

    #[test]
    fn the_period_is_the_most_common_step() {
        let h = 1.0 / 24.0;
        let stamps = [0.0, h, 2.0 * h, 4.0 * h, 5.0 * h, 5.0 * h, 6.0 * h];
        assert!((period(&stamps).unwrap() - h).abs() < 1e-12);
        assert_eq!(period(&[3.0, 3.0]), None);
    }
}
