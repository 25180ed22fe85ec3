//! Windows of a time series from a CSV: samples `[timesteps, features]` of
//! consecutive rows, each with the target column `horizon` rows after the
//! window's last; a chronological train / validation / test split;
//! standardisation fitted on the training rows only; calendar features
//! (day of year or hour of day as sin/cos) derived from a date column.

use std::path::Path;

use crate::csv_loader::open_csv;
use crate::dataset::Dataset;
use crate::error::{DataError, Result};
use crate::gaps::{classify, duration_text, period, GapReport, Gaps, Step};

/// Calendar features derived from the date column.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Calendar {
    None,
    /// sin and cos of 2π·(day of year)/365.25.
    DayOfYear,
    /// sin and cos of 2π·(hour + minute/60)/24.
    HourOfDay,
}

/// What to cut from a CSV.
#[derive(Clone, Debug)]
pub struct SeriesSpec {
    /// The column of dates (`YYYY-MM-DD` or `YYYY/MM/DD`, optionally with a
    /// time `HH:MM[:SS]`), in order; where consecutive dates are not one
    /// period apart, `gaps` says what happens.
    pub date_column: Option<String>,
    /// Input columns, in order.
    pub features: Vec<String>,
    pub target: String,
    /// Rows per window (timesteps).
    pub window: usize,
    /// How many rows after a window's last its target is (1: the next).
    pub horizon: usize,
    pub calendar: Calendar,
    /// Fractions of the windows for training and validation, in time
    /// order; the rest is the test part.
    pub train_fraction: f64,
    pub val_fraction: f64,
    /// What to do where the dates are not evenly spaced.
    pub gaps: Gaps,
}

/// One part of the split: windows `[n, window, features]` with their
/// standardised targets, and for each window the raw target and the raw
/// target at the window's last row (a persistence forecast).
#[derive(Clone, Debug)]
pub struct SeriesPart {
    pub data: Dataset,
    pub target_raw: Vec<f32>,
    pub last_observed: Vec<f32>,
}

/// A series cut into windows and split, with the standardisation (fitted on
/// the training rows) that maps targets back to their units.
#[derive(Clone, Debug)]
pub struct SeriesSplits {
    pub train: SeriesPart,
    pub val: SeriesPart,
    pub test: SeriesPart,
    /// Names of the features of each timestep (the columns, then calendar
    /// features).
    pub feature_names: Vec<String>,
    pub target_mean: f32,
    pub target_std: f32,
    /// The gaps found in the dates, and the windows left out for them.
    pub gaps: GapReport,
}

impl SeriesSplits {
    /// Standardised target values back in the target's units.
    pub fn unscale(&self, values: &[f32]) -> Vec<f32> {
        values
            .iter()
            .map(|v| v * self.target_std + self.target_mean)
            .collect()
    }
}

/// The year of day `z` since 1970-01-01 (Howard Hinnant's
/// `civil_from_days`, the inverse of [`days_from_civil`]).
fn year_of(z: i64) -> i64 {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    yoe + era * 400 + i64::from(mp >= 10)
}

/// The calendar features of the instant `days` (since 1970-01-01).
fn calendar_features(calendar: Calendar, days: f64) -> Vec<f32> {
    let angle = |x: f64| [(x.sin()) as f32, (x.cos()) as f32];
    let day = days.floor();
    match calendar {
        Calendar::DayOfYear => {
            let z = day as i64;
            let day_of_year = (z - days_from_civil(year_of(z), 1, 1) + 1) as f64;
            angle(std::f64::consts::TAU * day_of_year / 365.25).to_vec()
        }
        Calendar::HourOfDay => {
            let hour = (days - day) * 24.0;
            angle(std::f64::consts::TAU * hour / 24.0).to_vec()
        }
        Calendar::None => vec![],
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m as i64 + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// A date (and time) as days since 1970-01-01.
fn parse_stamp(text: &str) -> Option<f64> {
    let text = text.trim();
    let (date, time) = match text.split_once([' ', 'T']) {
        Some((d, t)) => (d, Some(t)),
        None => (text, None),
    };
    let parts: Vec<&str> = date.split(['-', '/']).collect();
    let [y, m, d] = parts.as_slice() else {
        return None;
    };
    let (y, m, d): (i64, u32, u32) = (y.parse().ok()?, m.parse().ok()?, d.parse().ok()?);
    // Four-digit years, as the formats above write them: a longer number
    // is no date (and would overflow the day count).
    if !(1..=9999).contains(&y) {
        return None;
    }
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let month_days = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if !(1..=12).contains(&m) || d == 0 || d > month_days[m as usize - 1] {
        return None;
    }
    let hour = match time {
        Some(t) => {
            let hm: Vec<&str> = t.split(':').collect();
            let h: f64 = hm.first()?.parse().ok()?;
            let min: f64 = hm.get(1).map_or(Some(0.0), |s| s.parse().ok())?;
            let sec: f64 = hm.get(2).map_or(Some(0.0), |s| s.parse().ok())?;
            if !(0.0..24.0).contains(&h)
                || !(0.0..60.0).contains(&min)
                || !(0.0..61.0).contains(&sec)
            {
                return None;
            }
            h + min / 60.0 + sec / 3600.0
        }
        None => 0.0,
    };
    Some(days_from_civil(y, m, d) as f64 + hour / 24.0)
}

/// Reads `path` and cuts it as `spec` says.
///
/// ```no_run
/// use kiln_data::{load_series, Calendar, SeriesSpec};
/// let spec = SeriesSpec {
///     date_column: Some("date".into()),
///     gaps: kiln_data::Gaps::Skip,
///     features: vec!["temp_max".into(), "temp_min".into(), "precipitation".into(), "wind".into()],
///     target: "temp_max".into(),
///     window: 10,
///     horizon: 1,
///     calendar: Calendar::DayOfYear,
///     train_fraction: 0.7,
///     val_fraction: 0.15,
/// };
/// let s = load_series("data/seattle-weather.csv", &spec)?;
/// assert_eq!(s.train.data.sample_shape(), &[10, 6]);
/// # Ok::<(), kiln_data::DataError>(())
/// ```
pub fn load_series(path: impl AsRef<Path>, spec: &SeriesSpec) -> Result<SeriesSplits> {
    let path = path.as_ref();
    let shown = path.display().to_string();
    let err = |detail: String| DataError::Csv {
        path: shown.clone(),
        detail,
    };
    if spec.window == 0 || spec.horizon == 0 {
        return Err(err(format!(
            "window {} and horizon {} must both be at least 1",
            spec.window, spec.horizon
        )));
    }
    if !(spec.train_fraction > 0.0
        && spec.val_fraction >= 0.0
        && spec.train_fraction + spec.val_fraction < 1.0)
    {
        return Err(err(format!(
            "train fraction {} and validation fraction {} must leave a test part",
            spec.train_fraction, spec.val_fraction
        )));
    }
    if spec.calendar != Calendar::None && spec.date_column.is_none() {
        return Err(err("calendar features need a date column".into()));
    }
    let (mut reader, header) = open_csv(path)?;
    let column = |name: &str| {
        header.iter().position(|h| h == name).ok_or_else(|| {
            err(format!(
                "no column named {name:?}; the header has {header:?}"
            ))
        })
    };
    let feature_cols: Vec<usize> = spec
        .features
        .iter()
        .map(|f| column(f))
        .collect::<Result<_>>()?;
    let target_col = column(&spec.target)?;
    let date_col = spec.date_column.as_deref().map(column).transpose()?;
    if feature_cols.is_empty() {
        return Err(err("no feature columns given".into()));
    }

    // Rows: the features and the target, with each row's instant.
    let mut rows: Vec<Vec<f32>> = Vec::new();
    let mut targets = Vec::new();
    let mut stamps: Vec<(f64, String)> = Vec::new();
    for (r, record) in reader.records().enumerate() {
        let line = r + 2;
        let record = record.map_err(|e| err(e.to_string()))?;
        if record.len() != header.len() {
            return Err(err(format!(
                "line {line}: {} fields, the header has {}",
                record.len(),
                header.len()
            )));
        }
        let number = |c: usize| -> Result<f32> {
            let field = record[c].trim();
            match field.parse::<f32>() {
                Ok(v) if v.is_finite() => Ok(v),
                _ => Err(err(format!(
                    "line {line}, column {:?}: {field:?} is not a number",
                    header[c]
                ))),
            }
        };
        let row: Vec<f32> = feature_cols
            .iter()
            .map(|&c| number(c))
            .collect::<Result<_>>()?;
        targets.push(number(target_col)?);
        if let Some(c) = date_col {
            let text = record[c].trim().to_string();
            let stamp = parse_stamp(&text).ok_or_else(|| {
                err(format!(
                    "line {line}, column {:?}: {text:?} is not a date (YYYY-MM-DD or YYYY/MM/DD, optionally HH:MM[:SS])",
                    header[c]
                ))
            })?;
            stamps.push((stamp, text));
        }
        rows.push(row);
    }
    let Regular {
        mut rows,
        targets,
        days,
        runs,
        mut report,
    } = regularise(rows, targets, &stamps, spec.gaps).map_err(err)?;
    if spec.calendar != Calendar::None {
        for (row, &d) in rows.iter_mut().zip(&days) {
            row.extend(calendar_features(spec.calendar, d));
        }
    }
    let n = rows.len();
    let needed = spec.window + spec.horizon;
    if n < needed + 2 {
        return Err(err(format!(
            "{n} rows: a window of {} and a horizon of {} need at least {} rows (and more to split)",
            spec.window,
            spec.horizon,
            needed + 2
        )));
    }
    // A window starts where its rows and its target lie in one even run.
    let starts: Vec<usize> = (0..=n - needed)
        .filter(|&w| runs[w] == runs[w + needed - 1])
        .collect();
    report.windows_left_out = n - needed + 1 - starts.len();
    let windows = starts.len();
    let n_train = ((windows as f64) * spec.train_fraction).round() as usize;
    let n_val = ((windows as f64) * spec.val_fraction).round() as usize;
    if n_train == 0 || n_train + n_val >= windows {
        return Err(err(format!(
            "{windows} windows cannot be split {}/{}/rest{}",
            spec.train_fraction,
            spec.val_fraction,
            if report.windows_left_out > 0 {
                format!(" ({report})")
            } else {
                String::new()
            }
        )));
    }
    // Standardise on the rows the training windows read (inputs, not
    // targets), never later ones.
    let fit_rows = starts[n_train - 1] + spec.window;
    let width = rows[0].len();
    let standardised = feature_cols.len(); // calendar features are in [−1, 1]
    let mut mean = vec![0.0f64; standardised];
    let mut std = vec![0.0f64; standardised];
    for row in &rows[..fit_rows] {
        for j in 0..standardised {
            mean[j] += row[j] as f64 / fit_rows as f64;
        }
    }
    for row in &rows[..fit_rows] {
        for j in 0..standardised {
            std[j] += (row[j] as f64 - mean[j]).powi(2) / fit_rows as f64;
        }
    }
    let std: Vec<f64> = std.iter().map(|v| v.sqrt().max(1e-12)).collect();
    let train_targets: Vec<f32> = starts[..n_train]
        .iter()
        .map(|&w| targets[w + spec.window - 1 + spec.horizon])
        .collect();
    let t_mean = train_targets.iter().map(|&v| v as f64).sum::<f64>() / train_targets.len() as f64;
    let t_std = (train_targets
        .iter()
        .map(|&v| (v as f64 - t_mean).powi(2))
        .sum::<f64>()
        / train_targets.len() as f64)
        .sqrt()
        .max(1e-12);
    let scaled: Vec<Vec<f32>> = rows
        .iter()
        .map(|row| {
            row.iter()
                .enumerate()
                .map(|(j, &v)| {
                    if j < standardised {
                        ((v as f64 - mean[j]) / std[j]) as f32
                    } else {
                        v
                    }
                })
                .collect()
        })
        .collect();
    let part = |range: std::ops::Range<usize>| -> Result<SeriesPart> {
        let mut x = Vec::with_capacity(range.len() * spec.window * width);
        let (mut y, mut raw, mut last) = (Vec::new(), Vec::new(), Vec::new());
        for &w in &starts[range] {
            for row in &scaled[w..w + spec.window] {
                x.extend_from_slice(row);
            }
            let t = targets[w + spec.window - 1 + spec.horizon];
            raw.push(t);
            y.push(((t as f64 - t_mean) / t_std) as f32);
            last.push(targets[w + spec.window - 1]);
        }
        Ok(SeriesPart {
            data: Dataset::with_shapes(x, &[spec.window, width], y, &[1])?,
            target_raw: raw,
            last_observed: last,
        })
    };
    let mut names = spec.features.clone();
    match spec.calendar {
        Calendar::DayOfYear => names.extend(["day_of_year_sin".into(), "day_of_year_cos".into()]),
        Calendar::HourOfDay => names.extend(["hour_sin".into(), "hour_cos".into()]),
        Calendar::None => {}
    }
    Ok(SeriesSplits {
        train: part(0..n_train)?,
        val: part(n_train..n_train + n_val)?,
        test: part(n_train + n_val..windows)?,
        feature_names: names,
        target_mean: t_mean as f32,
        target_std: t_std as f32,
        gaps: report,
    })
}

/// The rows after the gap policy: each row's instant (days; 0 without
/// dates) and the even run it belongs to.
struct Regular {
    rows: Vec<Vec<f32>>,
    targets: Vec<f32>,
    days: Vec<f64>,
    runs: Vec<usize>,
    report: GapReport,
}

/// Applies `policy` to rows dated by `stamps` (none: one run): numbers the
/// even runs, fills single missing steps for `Interpolate`, and refuses
/// any gap for `Error`, naming its line.
fn regularise(
    rows: Vec<Vec<f32>>,
    targets: Vec<f32>,
    stamps: &[(f64, String)],
    policy: Gaps,
) -> std::result::Result<Regular, String> {
    let n = rows.len();
    let Some(step) = period(&stamps.iter().map(|s| s.0).collect::<Vec<_>>()) else {
        if stamps.len() >= 2 {
            return Err(format!(
                "the dates never advance: no row's date is after the one before it (line 2 holds {})",
                stamps[0].1
            ));
        }
        // No dates, or one row: one run, instants from the dates there are.
        return Ok(Regular {
            days: match stamps {
                [] => vec![0.0; n],
                _ => stamps.iter().map(|s| s.0).collect(),
            },
            rows,
            targets,
            runs: vec![0; n],
            report: GapReport::default(),
        });
    };
    let mut out = Regular {
        rows: Vec::with_capacity(n),
        targets: Vec::with_capacity(n),
        days: Vec::with_capacity(n),
        runs: Vec::with_capacity(n),
        report: GapReport {
            period_days: step,
            ..GapReport::default()
        },
    };
    let mut run = 0;
    for k in 0..n {
        if k > 0 {
            let kind = classify(stamps[k].0 - stamps[k - 1].0, step);
            if kind != Step::Regular {
                if policy == Gaps::Error {
                    return Err(format!(
                        "a gap in the dates at line {}: {} follows {} (rows must be {} apart, in order)",
                        k + 2,
                        stamps[k].1,
                        stamps[k - 1].1,
                        duration_text(step)
                    ));
                }
                out.report.gaps += 1;
                if kind == Step::OneMissing && policy == Gaps::Interpolate {
                    let mid = |a: f32, b: f32| (a + b) / 2.0;
                    let row = rows[k - 1].iter().zip(&rows[k]).map(|(&a, &b)| mid(a, b));
                    out.rows.push(row.collect());
                    out.targets.push(mid(targets[k - 1], targets[k]));
                    out.days.push(stamps[k - 1].0 + step);
                    out.runs.push(run);
                    out.report.filled += 1;
                } else {
                    run += 1;
                }
            }
        }
        out.rows.push(rows[k].clone());
        out.targets.push(targets[k]);
        out.days.push(stamps[k].0);
        out.runs.push(run);
    }
    Ok(out)
}
