//! Time-series windows against the CSV read directly: shapes, which rows a
//! window holds and which its target is, the chronological split, the
//! standardisation fitted on training rows only, calendar features; and
//! every malformed file an error naming what is wrong.

use kiln_data::*;

const CSV: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../data/seattle-weather.csv"
);

fn spec(horizon: usize, calendar: Calendar) -> SeriesSpec {
    SeriesSpec {
        date_column: Some("date".into()),
        features: vec![
            "temp_max".into(),
            "temp_min".into(),
            "precipitation".into(),
            "wind".into(),
        ],
        target: "temp_max".into(),
        window: 10,
        horizon,
        calendar,
        train_fraction: 0.7,
        val_fraction: 0.15,
        gaps: Gaps::Skip,
    }
}

/// (date, temp_max, temp_min, precipitation, wind) of every row.
fn rows() -> Vec<(String, [f64; 4])> {
    let text = std::fs::read_to_string(CSV).unwrap();
    text.lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            let v = |i: usize| f[i].parse::<f64>().unwrap();
            (f[0].to_string(), [v(2), v(3), v(1), v(4)])
        })
        .collect()
}

#[test]
fn seattle_windows_split_in_time_order() {
    let rows = rows();
    assert_eq!(rows.len(), 1461);
    for horizon in [1, 3] {
        let s = load_series(CSV, &spec(horizon, Calendar::DayOfYear)).unwrap();
        let windows = 1461 - 10 - horizon + 1;
        let (tr, va, te) = (s.train.data.len(), s.val.data.len(), s.test.data.len());
        assert_eq!(tr + va + te, windows);
        assert_eq!(tr, (windows as f64 * 0.7).round() as usize);
        assert_eq!(s.train.data.sample_shape(), &[10, 6]);
        // Window k reads rows k..k+10; its target is temp_max `horizon`
        // rows after the last, and the persistence forecast the last.
        for (part, first) in [(&s.train, 0), (&s.val, tr), (&s.test, tr + va)] {
            for k in [0, part.data.len() - 1] {
                let w = first + k;
                assert_eq!(part.target_raw[k], rows[w + 9 + horizon].1[0] as f32);
                assert_eq!(part.last_observed[k], rows[w + 9].1[0] as f32);
                let back = s.unscale(&[part.data.targets()[k]])[0] as f64;
                assert!((back - rows[w + 9 + horizon].1[0]).abs() < 1e-3);
            }
        }
        // Standardised with the training rows' statistics only.
        let fit = tr + 9;
        for j in 0..4 {
            let vals: Vec<f64> = rows[..fit].iter().map(|r| r.1[j]).collect();
            let mean = vals.iter().sum::<f64>() / fit as f64;
            let sd = (vals.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / fit as f64).sqrt();
            let x = s.test.data.features();
            let k = s.test.data.len() - 1;
            let last_row = (k * 10 + 9) * 6;
            let want = (rows[tr + va + k + 9].1[j] - mean) / sd;
            assert!((x[last_row + j] as f64 - want).abs() < 1e-4, "feature {j}");
        }
        // Day of year 2012/01/01 is 1.
        let x = s.train.data.features();
        let angle = std::f64::consts::TAU / 365.25;
        assert!((x[4] as f64 - angle.sin()).abs() < 1e-6);
        assert!((x[5] as f64 - angle.cos()).abs() < 1e-6);
    }
    let s = load_series(CSV, &spec(1, Calendar::None)).unwrap();
    assert_eq!(s.train.data.sample_shape(), &[10, 4]);
    assert_eq!(
        s.feature_names,
        vec!["temp_max", "temp_min", "precipitation", "wind"]
    );
}

#[test]
fn malformed_series_are_errors_naming_the_problem() {
    let dir = std::env::temp_dir().join(format!("kiln-series-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let good: String = (1..=20)
        .map(|d| format!("2020-01-{d:02},{}.5,{}\n", d, 30 - d))
        .collect();
    let write = |name: &str, body: &str| {
        let p = dir.join(name);
        std::fs::write(&p, format!("date,a,b\n{body}")).unwrap();
        p
    };
    let mut sp = SeriesSpec {
        date_column: Some("date".into()),
        features: vec!["a".into(), "b".into()],
        target: "a".into(),
        window: 3,
        horizon: 1,
        calendar: Calendar::DayOfYear,
        train_fraction: 0.6,
        val_fraction: 0.2,
        gaps: Gaps::Skip,
    };
    let ok = write("ok.csv", &good);
    assert_eq!(
        load_series(&ok, &sp).unwrap().train.data.sample_shape(),
        &[3, 4]
    );
    let expect = |path: &std::path::Path, sp: &SeriesSpec, words: &str| {
        let e = load_series(path, sp).unwrap_err().to_string();
        assert!(e.contains(words), "{e} should say {words:?}");
        assert!(
            e.contains(&path.display().to_string()),
            "{e} should name the file"
        );
    };
    let mut missing = sp.clone();
    missing.features.push("c".into());
    expect(&ok, &missing, "no column named \"c\"");
    let bad = write("bad.csv", &good.replace("4.5,", "four,"));
    expect(&bad, &sp, "line 5, column \"a\": \"four\" is not a number");
    let gap = write("gap.csv", &good.replace("2020-01-07", "2020-01-08"));
    let strict = SeriesSpec {
        gaps: Gaps::Error,
        ..sp.clone()
    };
    expect(
        &gap,
        &strict,
        "a gap in the dates at line 8: 2020-01-08 follows 2020-01-06 (rows must be 1 day apart, in order)",
    );
    let stuck: String = (1..=20).map(|d| format!("2020-01-05,{d}.5,1\n")).collect();
    let stuck = write("stuck.csv", &stuck);
    expect(&stuck, &sp, "the dates never advance");
    let date = write("date.csv", &good.replace("2020-01-03", "2020-13-03"));
    expect(&date, &sp, "\"2020-13-03\" is not a date");
    // Found by fuzzing: a year of 19 digits overflowed the day count.
    let year = write(
        "year.csv",
        &good.replace("2020-01-03", "200000000000002020-01-03"),
    );
    expect(&year, &sp, "\"200000000000002020-01-03\" is not a date");
    let short = write(
        "short.csv",
        &good
            .lines()
            .take(5)
            .map(|l| format!("{l}\n"))
            .collect::<String>(),
    );
    expect(
        &short,
        &sp,
        "5 rows: a window of 3 and a horizon of 1 need at least 6 rows",
    );
    sp.window = 0;
    expect(&ok, &sp, "must both be at least 1");
}

/// An hourly series as real ones come: the spring-forward hour missing
/// (02:00 on 2021-03-28), one missing reading, a run of three missing, and
/// a repeated hour. Column `t` counts true hours since the start, so a
/// window that spans a gap shows it.
fn hourly_with_gaps() -> (String, Vec<i64>) {
    let dropped = [10, 26, 53, 54, 55];
    let mut hours: Vec<i64> = (0..72).filter(|h| !dropped.contains(h)).collect();
    let at = hours.iter().position(|&h| h == 64).unwrap();
    hours.insert(at, 64); // the repeated hour
    let mut csv = String::from("time,t,v\n");
    for &h in &hours {
        let (day, hour) = (27 + h / 24, h % 24);
        let v = (h as f64 / 5.0).sin();
        csv += &format!("2021-03-{day:02} {hour:02}:00,{h},{v}\n");
    }
    (csv, hours)
}

fn hourly_spec(gaps: Gaps) -> SeriesSpec {
    SeriesSpec {
        date_column: Some("time".into()),
        features: vec!["t".into(), "v".into()],
        target: "v".into(),
        window: 4,
        horizon: 1,
        calendar: Calendar::HourOfDay,
        train_fraction: 0.6,
        val_fraction: 0.2,
        gaps,
    }
}

/// Every window's `t` (standardised) steps by one constant: no window
/// spans a gap.
fn assert_windows_are_even(s: &SeriesSplits) {
    let mut step = None;
    for part in [&s.train, &s.val, &s.test] {
        let x = part.data.features();
        let width = 4; // t, v, hour sin, hour cos
        for w in 0..part.data.len() {
            let t: Vec<f32> = (0..4).map(|r| x[(w * 4 + r) * width]).collect();
            for d in t.windows(2).map(|p| p[1] - p[0]) {
                let s = *step.get_or_insert(d);
                assert!((d - s).abs() < 1e-4, "window {w} spans a gap: t = {t:?}");
            }
        }
    }
}

#[test]
fn hourly_series_with_gaps_keep_only_even_windows_by_default() {
    let dir = std::env::temp_dir().join(format!("kiln-gaps-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (csv, hours) = hourly_with_gaps();
    let path = dir.join("hourly.csv");
    std::fs::write(&path, csv).unwrap();
    // Windows (4 rows and the target) of consecutive hours, counted here.
    let even = |hours: &[i64]| {
        hours
            .windows(5)
            .filter(|w| w.windows(2).all(|p| p[1] - p[0] == 1))
            .count()
    };
    let s = load_series(&path, &hourly_spec(Gaps::Skip)).unwrap();
    let total = hours.len() - 5 + 1;
    assert_eq!(s.gaps.gaps, 4);
    assert_eq!(s.gaps.windows_left_out, total - even(&hours));
    let kept = s.train.data.len() + s.val.data.len() + s.test.data.len();
    assert_eq!(kept, even(&hours));
    assert_windows_are_even(&s);
    assert_eq!(
        s.gaps.to_string(),
        format!(
            "{} windows left out across 4 gaps in the dates (period 1 hour)",
            total - even(&hours)
        )
    );
    // Interpolation fills the two single missing hours, exactly here
    // because t is linear.
    let filled = load_series(&path, &hourly_spec(Gaps::Interpolate)).unwrap();
    assert_eq!(filled.gaps.filled, 2);
    let mut with_fill = hours.clone();
    with_fill.extend([10, 26]);
    with_fill.sort();
    // The repeat sorts next to its twin and still breaks runs.
    let kept = filled.train.data.len() + filled.val.data.len() + filled.test.data.len();
    assert_eq!(kept, even(&with_fill));
    assert_windows_are_even(&filled);
    assert!(filled
        .gaps
        .to_string()
        .ends_with("; 2 missing steps filled"));
    // And refused outright on request, in the dates' units.
    let e = load_series(&path, &hourly_spec(Gaps::Error))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("a gap in the dates at line 12: 2021-03-27 11:00 follows 2021-03-27 09:00 (rows must be 1 hour apart, in order)"),
        "{e}"
    );
}
