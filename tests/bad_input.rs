//! Bad input as a new user would give it: every case is an error that says
//! what was wrong, through the same calls training makes, never a panic and
//! never a run on garbage.

use std::path::PathBuf;

use kiln::backend::UnaryOp;
use kiln::data::{CsvDataset, DataError, Dataset, NonFinite};
use kiln::graph::Graph;
use kiln::models::{check_writable, CsvLogger, EpochLogs, History, ModelCheckpoint};
use kiln::prelude::*;

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("kiln-bad-input-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

fn csv(name: &str, text: &str) -> PathBuf {
    let path = scratch(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn a_nan_or_an_overflowing_cell_is_an_error_naming_line_and_column() {
    let nan = csv("nan.csv", "a,b,target\n1,2,0\n3,NaN,1\n5,6,1\n");
    let e = CsvDataset::load(&nan, "target").unwrap_err().to_string();
    assert!(
        e.contains("nan.csv") && e.contains("line 3") && e.contains("column \"b\""),
        "{e}"
    );
    assert!(e.contains("not a finite"), "{e}");
    // 1e39 parses to +inf in f32: beyond the type, not a number to train on.
    let big = csv("big.csv", "a,b,target\n1,2,0\n3,4,1\n1e39,6,1\n");
    let e = CsvDataset::load(&big, "target").unwrap_err().to_string();
    assert!(
        e.contains("line 4") && e.contains("column \"a\"") && e.contains("1e39"),
        "{e}"
    );
    let in_target = csv("inf_target.csv", "a,target\n1,inf\n");
    let e = CsvDataset::load(&in_target, "target")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("line 2") && e.contains("column \"target\""),
        "{e}"
    );
}

#[test]
fn dropping_non_finite_rows_is_an_explicit_choice_that_reports_them() {
    let path = csv("drop.csv", "a,b,target\n1,2,0\n3,NaN,1\n5,6,1\n-inf,1,0\n");
    let loaded = CsvDataset::load_with(&path, "target", NonFinite::DropRow).unwrap();
    assert_eq!(loaded.dropped_rows, vec![3, 5]);
    assert_eq!(loaded.data.len(), 2);
    assert_eq!(loaded.data.features(), &[1.0, 2.0, 5.0, 6.0]);
    assert_eq!(loaded.data.targets(), &[0.0, 1.0]);
    let all_bad = csv("all_bad.csv", "a,target\nnan,1\n");
    let e = CsvDataset::load_with(&all_bad, "target", NonFinite::DropRow).unwrap_err();
    assert!(
        e.to_string().contains("every one of the 1 data rows"),
        "{e}"
    );
}

fn mlp(device: &Device) -> Sequential {
    let mut m = Sequential::new(device, [2])
        .seed(1)
        .dense(4, Activation::Relu)
        .dense(1, Activation::Sigmoid);
    m.compile(
        Optimizer::adam(1e-3),
        Loss::BinaryCrossEntropy,
        &[Metric::BinaryAccuracy],
    )
    .unwrap();
    m
}

#[test]
fn fit_refuses_labels_outside_the_losses_domain_and_non_finite_features() {
    let device = Device::auto().unwrap();
    let mut m = mlp(&device);
    let before = m.weights().unwrap();
    let labels = Dataset::new(
        vec![0.1, 0.2, 0.3, 0.4, 0.5, 0.6],
        vec![0.0, 7.0, 1.0],
        2,
        1,
    )
    .unwrap();
    let e = m.fit(&labels, Fit::epochs(5)).unwrap_err().to_string();
    assert!(
        e.contains("BinaryCrossEntropy: row 1 of the data has target 7") && e.contains("[0, 1]"),
        "{e}"
    );
    let features = Dataset::new(vec![0.1, f32::NAN, 0.3, 0.4], vec![0.0, 1.0], 2, 1).unwrap();
    let e = m.fit(&features, Fit::epochs(5)).unwrap_err().to_string();
    assert!(e.contains("NaN") && e.contains("finite"), "{e}");
    assert_eq!(m.weights().unwrap(), before, "no step ran on bad data");

    // Class indices must be whole numbers below the number of outputs.
    let mut c = Sequential::new(&device, [2])
        .seed(1)
        .dense(3, Activation::None);
    c.compile(
        Optimizer::adam(1e-3),
        Loss::SparseCategoricalCrossEntropyFromLogits,
        &[],
    )
    .unwrap();
    let classes = Dataset::new(vec![0.1, 0.2, 0.3, 0.4], vec![2.0, 3.0], 2, 1).unwrap();
    let e = c.fit(&classes, Fit::epochs(1)).unwrap_err().to_string();
    assert!(
        e.contains("row 1 of the data has target 3: it is not a class index in 0..3"),
        "{e}"
    );
}

#[test]
fn output_paths_are_checked_before_the_first_step() {
    let device = Device::auto().unwrap();
    let data = Dataset::new(vec![0.1, 0.2, 0.3, 0.4], vec![0.0, 1.0], 2, 1).unwrap();
    let missing = scratch("no-such-folder").join("log.csv");
    for fit in [
        Fit::epochs(3).callback(CsvLogger::new(&missing)),
        Fit::epochs(3).callback(ModelCheckpoint::best_only(&missing, "loss")),
    ] {
        let mut m = mlp(&device);
        let before = m.weights().unwrap();
        let e = m.fit(&data, fit).unwrap_err().to_string();
        assert!(
            e.contains("no-such-folder") && e.contains("does not exist"),
            "{e}"
        );
        assert_eq!(
            m.weights().unwrap(),
            before,
            "the error came before training"
        );
    }
    let folder = scratch("");
    let e = check_writable(&folder).unwrap_err().to_string();
    assert!(e.contains("it is a folder"), "{e}");
    let fine = scratch("fine.csv");
    check_writable(&fine).unwrap();
    assert!(!fine.exists(), "the probe leaves nothing behind");
}

#[test]
fn public_calls_with_bad_indices_ids_or_shapes_are_errors() {
    let d = Dataset::new(vec![1.0, 2.0, 3.0, 4.0], vec![0.0, 1.0], 2, 1).unwrap();
    let e = d.gather(&[0, 2]).unwrap_err().to_string();
    assert!(e.contains("row 2 is out of range for 2 rows"), "{e}");
    assert!(matches!(d.subset(&[5]), Err(DataError::Shape(_))));

    let mut a = Graph::new();
    let mut b = Graph::new();
    let xa = a.input("x", &[2, 3]);
    let _ = b.input("x", &[2, 3]);
    let foreign = |e: kiln::graph::GraphError| e.to_string();
    let msgs = [
        foreign(b.flatten(xa, 1).unwrap_err()),
        foreign(b.sum_all(xa).unwrap_err()),
        foreign(b.mean_all(xa).unwrap_err()),
        foreign(b.grad(xa, &[xa]).unwrap_err()),
        foreign(b.backward(&[(xa, xa)], &[xa]).unwrap_err()),
        foreign(b.unary(UnaryOp::Relu, xa).unwrap_err()),
    ];
    for (m, op) in msgs.iter().zip([
        "flatten", "sum_all", "mean_all", "grad", "backward", "unary",
    ]) {
        assert!(
            m.contains(op) && m.contains("belongs to another graph"),
            "{op}: {m}"
        );
    }
    // An id past the end of a graph it claims to belong to.
    let late = {
        let mut c = a.clone();
        c.input("y", &[1])
    };
    let e = a.unary(UnaryOp::Relu, late).unwrap_err().to_string();
    assert!(e.contains("is not in this graph"), "{e}");
    // Unbroadcasting to a higher rank is no reduction of the gradient.
    let e = a.unbroadcast(xa, &[4, 2, 3]).unwrap_err().to_string();
    assert!(e.contains("does not broadcast"), "{e}");
}

#[test]
fn a_diverged_history_still_plots() {
    let mut h = History::default();
    for epoch in 1..=3 {
        h.epochs.push(EpochLogs {
            epoch,
            values: vec![("loss".into(), f32::NAN), ("val_loss".into(), f32::NAN)],
        });
    }
    let path = scratch("nan.svg");
    h.plot_svg(&path).unwrap();
    assert!(std::fs::read_to_string(&path).unwrap().contains("<svg"));
}

#[test]
fn a_tensor_beyond_the_adapters_binding_limit_is_refused_before_anything_runs() {
    let device = Device::auto().unwrap();
    let limit = device.summary().max_storage_binding_bytes;
    let rows = (limit / 4 / 1024) as usize + 1;
    let pool_before = device.pool_counters().allocations;
    let mut g = Graph::new();
    let x = g.input("images", &[rows, 1024]);
    let y = g.unary(UnaryOp::Relu, x).unwrap();
    let e = kiln::graph::Plan::compile(&device, &g, &[y])
        .err()
        .expect("refused")
        .to_string();
    assert!(
        e.contains("\"images\"")
            && e.contains(&format!("{rows}, 1024"))
            && e.contains(&format!("at most {limit} bytes")),
        "{e}"
    );
    assert_eq!(
        device.pool_counters().allocations,
        pool_before,
        "nothing was allocated"
    );
    // The same bound holds for an intermediate the plan would store.
    let mut g = Graph::new();
    let a = g.input("a", &[rows / 2 + 1, 1024]);
    let wide = g.concat(&[a, a], 0).unwrap();
    let e = kiln::graph::Plan::compile(&device, &g, &[wide])
        .err()
        .expect("refused")
        .to_string();
    assert!(e.contains("at most") && e.contains("MiB"), "{e}");
}
