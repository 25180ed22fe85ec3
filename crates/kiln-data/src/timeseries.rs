//! Windows of a time series from a CSV: samples `[timesteps, features]` of
//! consecutive rows, each with the target column `horizon` rows after the
//! window's last; a chronological train / validation / test split;
//! standardisation fitted on the training rows only; calendar features
//! (day of year or hour of day as sin/cos) derived from a date column.

use std::path::Path;

use crate::csv_loader::open_csv;
use crate::dataset::Dataset;
use crate::error::{DataError, Result};

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
    /// time `HH:MM[:SS]`): rows must be evenly spaced, without gaps.
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

/// A date (and time) as days since 1970-01-01, with the day of the year
/// (1-based) and the hour of the day.
struct Stamp {
    days: f64,
    day_of_year: u32,
    hour: f64,
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

fn parse_stamp(text: &str) -> Option<Stamp> {
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
    let days = days_from_civil(y, m, d);
    let day_of_year = (days - days_from_civil(y, 1, 1) + 1) as u32;
    Some(Stamp {
        days: days as f64 + hour / 24.0,
        day_of_year,
        hour,
    })
}

/// Reads `path` and cuts it as `spec` says.
///
/// ```no_run
/// use kiln_data::{load_series, Calendar, SeriesSpec};
/// let spec = SeriesSpec {
///     date_column: Some("date".into()),
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

    // Rows: the features, the target, and the calendar features.
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
        let mut row: Vec<f32> = feature_cols
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
            let angle = |x: f64| [(x.sin()) as f32, (x.cos()) as f32];
            match spec.calendar {
                Calendar::DayOfYear => row.extend(angle(
                    std::f64::consts::TAU * stamp.day_of_year as f64 / 365.25,
                )),
                Calendar::HourOfDay => row.extend(angle(std::f64::consts::TAU * stamp.hour / 24.0)),
                Calendar::None => {}
            }
            stamps.push((stamp.days, text));
        }
        rows.push(row);
    }
    // Evenly spaced dates: the first step is the series' period.
    if stamps.len() >= 2 {
        let step = stamps[1].0 - stamps[0].0;
        for k in 1..stamps.len() {
            let d = stamps[k].0 - stamps[k - 1].0;
            if step <= 0.0 || (d - step).abs() > 1e-6 {
                return Err(err(format!(
                    "a gap in the dates at line {}: {} follows {} (rows must be {} apart, in order)",
                    k + 2,
                    stamps[k].1,
                    stamps[k - 1].1,
                    if step > 0.0 { format!("{step} days") } else { "evenly".to_string() }
                )));
            }
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
    let windows = n - needed + 1;
    let n_train = ((windows as f64) * spec.train_fraction).round() as usize;
    let n_val = ((windows as f64) * spec.val_fraction).round() as usize;
    if n_train == 0 || n_train + n_val >= windows {
        return Err(err(format!(
            "{windows} windows cannot be split {}/{}/rest",
            spec.train_fraction, spec.val_fraction
        )));
    }
    // Standardise on the rows the training windows read (inputs and
    // targets), never later ones.
    let fit_rows = n_train + spec.window - 1;
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
    let train_targets =
        &targets[spec.window - 1 + spec.horizon..n_train + spec.window - 1 + spec.horizon];
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
        for w in range {
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
    })
}
