//! The tutorial's LSTM forecaster: `LSTM(50, relu, return_sequences) →
//! LSTM(50, relu) → Dense(1)` with MSE, Adam and early stopping, predicting
//! a column of a time series `--horizon` rows ahead from the previous
//! `--window` rows. By default: Seattle's daily maximum temperature from
//! ten days of temp_max, temp_min, precipitation and wind plus the day of
//! the year (sin/cos), split 70/15/15 in time order. Prints the test MAE
//! beside persistence and a ridge regression on the same windows, and ends
//! with one JSON line.
//!
//! `cargo run --release --example lstm_forecast -- --horizon 3`

use std::path::PathBuf;
use std::time::Instant;

use clap::Parser;
#[path = "harness/mod.rs"]
pub mod harness;
use kiln::data::{load_series, Calendar, GapReport, Gaps, SeriesSpec, SeriesSplits};
use kiln::prelude::*;

#[derive(Parser, Clone, Debug)]
#[command(about = "Forecast a time series with the tutorial's stacked LSTM")]
#[command(mut_arg("epochs", |a| a.default_value("200")))]
pub struct Args {
    #[command(flatten)]
    pub common: harness::Common,
    /// The CSV series (one row per time step).
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/data/seattle-weather.csv"))]
    pub data: PathBuf,
    /// The column of dates, in order; empty for none.
    #[arg(long, default_value = "date")]
    pub date_column: String,
    /// Where dates are not one period apart: skip (windows only from even
    /// runs), error, or interpolate (fill single missing steps).
    #[arg(long, default_value = "skip")]
    pub gaps: String,
    /// The column to forecast.
    #[arg(long, default_value = "temp_max")]
    pub target: String,
    /// The input columns of each timestep, comma-separated.
    #[arg(
        long,
        default_value = "temp_max,temp_min,precipitation,wind",
        value_delimiter = ','
    )]
    pub features: Vec<String>,
    /// Rows (timesteps) per window.
    #[arg(long, default_value_t = 10)]
    pub window: usize,
    /// How many rows ahead the target is (1: the next).
    #[arg(long, default_value_t = 1)]
    pub horizon: usize,
    /// Calendar features from the date: day (of year), hour (of day) or none.
    #[arg(long, default_value = "day")]
    pub calendar: String,
    /// Units of each of the two LSTM layers.
    #[arg(long, default_value_t = 50)]
    pub units: usize,
    /// Epochs without a better validation loss before stopping.
    #[arg(long, default_value_t = 20)]
    pub patience: usize,
}

/// What a run reports: mean absolute errors in the target's units on the
/// test windows.
#[derive(Debug)]
pub struct Outcome {
    pub test_mae: f32,
    pub persistence_mae: f32,
    pub linear_mae: f32,
    pub epochs: usize,
    pub best_epoch: Option<usize>,
    pub train_seconds: f64,
    /// The gaps in the dates, and the windows left out for them.
    pub gaps: GapReport,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let device = args.common.start()?;
    let out = run(&device, &args)?;
    if !args.common.quiet {
        println!(
            "test MAE: LSTM {:.3}, persistence {:.3}, ridge {:.3}",
            out.test_mae, out.persistence_mae, out.linear_mae
        );
    }
    println!(
        "{}",
        serde_json::json!({
            "test_mae": harness::num(out.test_mae),
            "persistence_mae": harness::num(out.persistence_mae),
            "linear_mae": harness::num(out.linear_mae),
            "epochs_run": out.epochs,
            "best_epoch": out.best_epoch,
            "horizon": args.horizon,
            "train_seconds": harness::seconds(out.train_seconds, 1),
            "windows_left_out": out.gaps.windows_left_out,
            "device": device.name(),
        })
    );
    Ok(())
}

fn mae(a: &[f32], b: &[f32]) -> f32 {
    let s: f64 = a.iter().zip(b).map(|(x, y)| (x - y).abs() as f64).sum();
    (s / a.len().max(1) as f64) as f32
}

/// Loads the series, trains the forecaster and scores it and the baselines.
pub fn run(device: &Device, args: &Args) -> anyhow::Result<Outcome> {
    let calendar = match args.calendar.as_str() {
        "day" => Calendar::DayOfYear,
        "hour" => Calendar::HourOfDay,
        "none" => Calendar::None,
        other => anyhow::bail!("--calendar {other:?}: expected day, hour or none"),
    };
    let date_column = (!args.date_column.is_empty()).then(|| args.date_column.clone());
    let spec = SeriesSpec {
        calendar: if date_column.is_some() {
            calendar
        } else {
            Calendar::None
        },
        date_column,
        features: args.features.clone(),
        target: args.target.clone(),
        window: args.window,
        horizon: args.horizon,
        train_fraction: 0.7,
        val_fraction: 0.15,
        gaps: match args.gaps.as_str() {
            "skip" => Gaps::Skip,
            "error" => Gaps::Error,
            "interpolate" => Gaps::Interpolate,
            other => anyhow::bail!("--gaps {other:?}: expected skip, error or interpolate"),
        },
    };
    let run = &args.common;
    let s = load_series(&args.data, &spec)?;
    let features = s.feature_names.len();
    run.say(format!(
        "device: {}\ndata: {} ({} training, {} validation, {} test windows of {} × {features}: {:?})",
        device.name(),
        args.data.display(),
        s.train.data.len(),
        s.val.data.len(),
        s.test.data.len(),
        args.window,
        s.feature_names
    ));
    if s.gaps.gaps > 0 {
        run.say(format!("gaps: {}", s.gaps));
    }

    let mut model = Sequential::new(device, [args.window, features])
        .seed(run.seed)
        .lstm(args.units, Activation::Relu, true)
        .lstm(args.units, Activation::Relu, false)
        .dense(1, Activation::None);
    model.compile(
        Optimizer::adam(run.lr),
        Loss::MeanSquaredError,
        &[Metric::MeanAbsoluteError],
    )?;
    run.say(model.summary()?);
    let fit = run.fit().validation_data(s.val.data.clone()).callback(
        EarlyStopping::monitor("val_loss")
            .patience(args.patience)
            .restore_best_weights(),
    );
    let start = Instant::now();
    let history = model.fit(&s.train.data, fit)?;
    let train_seconds = start.elapsed().as_secs_f64();
    run.write_outputs(&history)?;

    let predicted = model.predict(&s.test.data, 256)?;
    let test_mae = mae(&s.unscale(predicted.data()), &s.test.target_raw);
    let persistence_mae = mae(&s.test.last_observed, &s.test.target_raw);
    let linear_mae = ridge_mae(&s);
    Ok(Outcome {
        test_mae,
        persistence_mae,
        linear_mae,
        epochs: history.epochs.len(),
        best_epoch: history.best_epoch,
        train_seconds,
        gaps: s.gaps.clone(),
    })
}

/// A ridge regression on the flattened windows (with an intercept), its
/// penalty chosen on the validation windows; the test MAE.
fn ridge_mae(s: &SeriesSplits) -> f32 {
    let d = s.train.data.n_features() + 1;
    let rows = |p: &kiln::data::SeriesPart| -> Vec<Vec<f64>> {
        p.data
            .features()
            .chunks(d - 1)
            .map(|r| {
                std::iter::once(1.0)
                    .chain(r.iter().map(|&v| v as f64))
                    .collect()
            })
            .collect()
    };
    let (xt, xv, xs) = (rows(&s.train), rows(&s.val), rows(&s.test));
    let yt: Vec<f64> = s.train.data.targets().iter().map(|&v| v as f64).collect();
    let mut gram = vec![vec![0.0; d]; d];
    let mut rhs = vec![0.0; d];
    for (x, y) in xt.iter().zip(&yt) {
        for i in 0..d {
            rhs[i] += x[i] * y;
            for j in 0..d {
                gram[i][j] += x[i] * x[j];
            }
        }
    }
    let predict = |w: &[f64], x: &[Vec<f64>]| -> Vec<f32> {
        let p: Vec<f32> = x
            .iter()
            .map(|r| r.iter().zip(w).map(|(a, b)| a * b).sum::<f64>() as f32)
            .collect();
        s.unscale(&p)
    };
    let mut best: Option<(f32, Vec<f64>)> = None;
    for lambda in [0.01, 0.1, 1.0, 10.0, 100.0, 1000.0] {
        let mut a = gram.clone();
        for (i, row) in a.iter_mut().enumerate().skip(1) {
            row[i] += lambda; // the intercept is not penalised
        }
        let w = solve(a, rhs.clone());
        let val = if xv.is_empty() {
            0.0
        } else {
            mae(&predict(&w, &xv), &s.val.target_raw)
        };
        if best.as_ref().is_none_or(|(b, _)| val < *b) {
            best = Some((val, w));
        }
    }
    let (_, w) = best.expect("a penalty was tried");
    mae(&predict(&w, &xs), &s.test.target_raw)
}

/// Solves `a·w = b` for a symmetric positive-definite `a` (Gaussian
/// elimination with partial pivoting).
fn solve(mut a: Vec<Vec<f64>>, mut b: Vec<f64>) -> Vec<f64> {
    let n = b.len();
    for c in 0..n {
        let p = (c..n)
            .max_by(|&i, &j| a[i][c].abs().total_cmp(&a[j][c].abs()))
            .expect("rows left");
        a.swap(c, p);
        b.swap(c, p);
        let (top, below) = a.split_at_mut(c + 1);
        let pivot = &top[c];
        for (k, row) in below.iter_mut().enumerate() {
            let f = row[c] / pivot[c];
            for (x, p) in row[c..].iter_mut().zip(&pivot[c..]) {
                *x -= f * p;
            }
            b[c + 1 + k] -= f * b[c];
        }
    }
    let mut w = vec![0.0; n];
    for r in (0..n).rev() {
        let s: f64 = (r + 1..n).map(|k| a[r][k] * w[k]).sum();
        w[r] = (b[r] - s) / a[r][r];
    }
    w
}
