//! TensorBoard event files. kiln's writer is checked against TensorBoard's
//! own reader offline: `tests/fixtures/tensorboard/` holds an event file
//! this writer wrote from the values below and what TensorBoard's
//! `EventAccumulator` read from it (`scripts/tensorboard/read_events.py`,
//! versions pinned beside it). Here the writer must reproduce that file
//! byte for byte, and what TensorBoard read must be these values.

use kiln::models::{EventWriter, TensorBoard};
use kiln::prelude::*;

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/tensorboard");

/// (tag, step, value, wall time) of the fixture's scalars.
fn scalars() -> Vec<(&'static str, i64, f32, f64)> {
    let mut s = Vec::new();
    for epoch in 1..=3i64 {
        let t = 1_700_000_000.0 + epoch as f64;
        let e = epoch as f32;
        s.push(("loss", epoch, 0.9 / e, t));
        s.push(("accuracy", epoch, 0.5 + 0.1 * e, t));
        s.push(("val_loss", epoch, 1.0 / e + 0.05, t));
        s.push(("val_accuracy", epoch, 0.45 + 0.1 * e, t));
    }
    for step in 1..=6i64 {
        s.push(("batch_loss", step, 1.0 / step as f32, 1_700_000_000.5));
    }
    s
}

#[test]
fn the_writer_makes_the_file_tensorboard_read_back() {
    let out = std::env::temp_dir().join(format!(
        "kiln-tb-{}/events.out.tfevents.1700000000.kiln",
        std::process::id()
    ));
    std::fs::create_dir_all(out.parent().unwrap()).unwrap();
    let mut w = EventWriter::create(&out, 1_700_000_000.0).unwrap();
    for (tag, step, value, t) in scalars() {
        w.scalar(tag, step, value, t).unwrap();
    }
    drop(w);
    println!("wrote {}", out.display());
    let got = std::fs::read(&out).unwrap();
    let want = std::fs::read(format!("{FIXTURE}/events.out.tfevents.1700000000.kiln")).unwrap();
    assert!(
        got == want,
        "the writer's bytes changed from the file TensorBoard read"
    );
    // What TensorBoard's EventAccumulator read: every tag, step and value.
    let read: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(format!("{FIXTURE}/read_by_tensorboard.json")).unwrap(),
    )
    .unwrap();
    let mut count = 0;
    for (tag, step, value, t) in scalars() {
        let points = read["scalars"][tag]
            .as_array()
            .unwrap_or_else(|| panic!("{tag} not read"));
        let p = points
            .iter()
            .find(|p| p["step"] == step)
            .unwrap_or_else(|| panic!("{tag} step {step} not read"));
        assert_eq!(p["value"].as_f64().unwrap() as f32, value, "{tag} {step}");
        assert_eq!(p["wall_time"].as_f64().unwrap(), t, "{tag} {step}");
        count += 1;
    }
    let total: usize = read["scalars"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_array().unwrap().len())
        .sum();
    assert_eq!(
        total, count,
        "TensorBoard read points that were not written"
    );
    // EventAccumulator keeps the number of "brain.Event:2".
    assert_eq!(read["file_version"].as_f64(), Some(2.0));
}

/// The records of an event file, split by their length fields.
fn records(bytes: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let len = u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap()) as usize;
        out.push(&bytes[at + 12..at + 12 + len]);
        at += 12 + len + 4;
    }
    assert_eq!(at, bytes.len(), "a record runs past the end");
    out
}

#[test]
fn a_fit_logs_every_epoch_and_optionally_every_batch() {
    let device = kiln::device_from_flag(None).unwrap();
    let dir = std::env::temp_dir().join(format!("kiln-tb-fit-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let x: Vec<f32> = (0..64).map(|i| (i % 9) as f32 / 9.0).collect();
    let y: Vec<f32> = (0..16).map(|i| (i % 2) as f32).collect();
    let data = Dataset::new(x, y, 4, 1).unwrap();
    let mut m = Sequential::new(&device, 4)
        .seed(2)
        .dense(1, Activation::Sigmoid);
    m.compile(
        Optimizer::sgd(0.1),
        Loss::BinaryCrossEntropy,
        &[Metric::BinaryAccuracy],
    )
    .unwrap();
    m.fit(
        &data,
        Fit::epochs(3)
            .batch_size(4)
            .validation_split(0.25)
            .verbosity(Verbosity::Silent)
            .callback(TensorBoard::new(&dir).per_batch()),
    )
    .unwrap();
    let files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    assert!(files[0]
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .contains("tfevents"));
    let bytes = std::fs::read(&files[0]).unwrap();
    let recs = records(&bytes);
    // The version, 4 values per epoch (loss, accuracy, val_…), and one
    // batch_loss per step (12 training rows in batches of 4).
    assert_eq!(recs.len(), 1 + 3 * 4 + 3 * 3);
    let tagged = |tag: &str| {
        recs.iter()
            .filter(|r| r.windows(tag.len()).any(|w| w == tag.as_bytes()))
            .count()
    };
    assert_eq!(tagged("val_loss"), 3);
    assert_eq!(tagged("batch_loss"), 9);
    std::fs::remove_dir_all(&dir).ok();
}
