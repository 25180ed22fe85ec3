//! The fit loop and its parts on the real data set: training to quality,
//! early stopping with best-weight restore, checkpoint resume, NaN handling,
//! and errors that name what is wrong.

use kiln::models::{checkpoint, Naming};
use kiln::prelude::*;

mod common;
use common::compare;

const CSV: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/data/breast_cancer.csv");

fn device() -> Device {
    kiln::device_from_flag(None).expect("an adapter")
}

fn mlp(device: &Device, seed: u64) -> Sequential {
    common::tutorial_mlp(device, seed)
}

fn data() -> (Dataset, Dataset) {
    let d = CsvDataset::load(CSV, "target").unwrap();
    let (mut train, mut test) = d.split(0.8, 42).unwrap();
    let s = Standardizer::fit(&train);
    s.transform(&mut train).unwrap();
    s.transform(&mut test).unwrap();
    (train, test)
}

#[test]
fn the_mlp_learns_the_breast_cancer_data_in_a_few_epochs() {
    let device = device();
    let (train, test) = data();
    let mut m = mlp(&device, 3);
    let h = m
        .fit(
            &train,
            Fit::epochs(8)
                .validation_split(0.2)
                .verbosity(Verbosity::Silent),
        )
        .unwrap();
    assert_eq!(h.epochs.len(), 8);
    let loss = h.series("loss");
    assert!(
        loss[7] < 0.5 * loss[0],
        "training loss should fall: {loss:?}"
    );
    assert_eq!(h.names(), ["loss", "accuracy", "val_loss", "val_accuracy"]);
    // The history as CSV and as a picture.
    let csv = h.to_csv();
    assert_eq!(csv.lines().count(), 9);
    assert!(csv.starts_with("epoch,loss,accuracy,val_loss,val_accuracy\n1,"));
    let svg = std::env::temp_dir().join(format!("kiln-history-{}.svg", std::process::id()));
    h.plot_svg(&svg).unwrap();
    let text = std::fs::read_to_string(&svg).unwrap();
    assert!(text.contains("<svg") && text.contains("val") && text.contains("polyline"));
    std::fs::remove_file(&svg).ok();
    assert!(
        h.plot_svg("history.png").is_err(),
        "plot_svg writes SVG only"
    );
    assert!(h.plot("history.gif").is_err(), "SVG or PNG");
    // PNG: an image library opens it at one 480 × 360 panel per quantity,
    // and the curves are there in their colours (blue train, red validation).
    let png = std::env::temp_dir().join(format!("kiln-history-{}.png", std::process::id()));
    h.plot(&png).unwrap();
    let img = image::open(&png).unwrap().to_rgb8();
    assert_eq!(img.dimensions(), (2 * 480, 360));
    let count = |want: [u8; 3]| img.pixels().filter(|p| p.0 == want).count();
    assert!(count([0, 0, 255]) > 200, "no blue training curve");
    assert!(count([255, 0, 0]) > 200, "no red validation curve");
    // Text is drawn with the bundled font: dark pixels beyond the curves.
    let dark = img.pixels().filter(|p| p.0.iter().all(|&c| c < 80)).count();
    assert!(dark > 500, "no text or axes ({dark} dark pixels)");
    std::fs::remove_file(&png).ok();
    let e = m.evaluate(&test, 32).unwrap();
    assert!(e.metrics[0].1 >= 0.9, "test accuracy {}", e.metrics[0].1);
    // evaluate agrees with predict + a host-side accuracy
    let p = m.predict(&test, 50).unwrap();
    assert_eq!(p.shape(), &[test.len(), 1]);
    let hits = p
        .data()
        .iter()
        .zip(test.targets())
        .filter(|(&p, &t)| (p > 0.5) == (t > 0.5))
        .count();
    let acc = hits as f32 / test.len() as f32;
    assert!(
        (acc - e.metrics[0].1).abs() < 1e-6,
        "{acc} vs {}",
        e.metrics[0].1
    );
}

#[test]
fn early_stopping_restores_the_best_epoch() {
    // A model whose weights we can mark, and a scripted monitored value.
    let device = device();
    let mut m = Sequential::new(&device, 2).dense(1, Activation::None);
    m.compile(Optimizer::sgd(0.1), Loss::MeanSquaredError, &[])
        .unwrap();
    let mut es = EarlyStopping::monitor("val_loss")
        .patience(3)
        .restore_best_weights();
    let mut h = History::default();
    use kiln::models::{Callback, Control, EpochLogs};
    let values = [1.0, 0.9, 0.95, 0.96, 0.97, 0.5];
    let mut stopped_at = None;
    for (i, v) in values.iter().enumerate() {
        m.set_weight("dense.bias", &[i as f32]).unwrap();
        let logs = EpochLogs {
            epoch: i + 1,
            values: vec![("val_loss".into(), *v)],
        };
        if es.on_epoch_end(&logs, &mut m, &mut h).unwrap() == Control::Stop {
            stopped_at = Some(i + 1);
            break;
        }
    }
    assert_eq!(
        stopped_at,
        Some(5),
        "three epochs without improvement after epoch 2"
    );
    es.on_train_end(&mut m, &mut h).unwrap();
    assert_eq!(h.best_epoch, Some(2));
    assert!(h.restored_best && h.stopped_early);
    assert_eq!(
        m.value("dense.bias").unwrap(),
        vec![1.0],
        "epoch 2's weights are back"
    );
}

#[test]
fn a_checkpoint_resumes_training_exactly() {
    let device = device();
    let (train, _) = data();
    let batches: Vec<(Vec<f32>, Vec<f32>)> = (0..5)
        .map(|b| {
            train
                .gather(&(b * 32..b * 32 + 32).collect::<Vec<_>>())
                .unwrap()
        })
        .collect();
    let path = std::env::temp_dir().join(format!("kiln-resume-{}.safetensors", std::process::id()));
    let mut a = mlp(&device, 9);
    for (x, y) in &batches[..3] {
        a.train_on_batch(x, y).unwrap();
    }
    checkpoint::save(&a, &path, 3).unwrap();
    for (x, y) in &batches[3..] {
        a.train_on_batch(x, y).unwrap();
    }
    // The same model built again (same seed: the same dropout masks) with
    // its weights wiped, resumed from the checkpoint, takes the same two
    // steps: same weights, Adam moments, step count and dropout draws.
    let mut b = mlp(&device, 9);
    for (name, w) in b.weights().unwrap() {
        b.set_weight(&name, &vec![0.25; w.len()]).unwrap();
    }
    assert_eq!(checkpoint::load(&mut b, &path).unwrap(), 3);
    for (x, y) in &batches[3..] {
        b.train_on_batch(x, y).unwrap();
    }
    for (name, wa) in a.weights().unwrap() {
        let wb = b.value(&name).unwrap();
        compare::assert_bit_identical(&format!("{name} after resuming"), &wb, &wa);
    }
    // A checkpoint of another architecture is refused with the tensor's name.
    let mut other = Sequential::new(&device, 30)
        .dense(8, Activation::Relu)
        .dense(1, Activation::Sigmoid);
    other
        .compile(Optimizer::adam(1e-3), Loss::BinaryCrossEntropy, &[])
        .unwrap();
    let e = checkpoint::load(&mut other, &path).unwrap_err().to_string();
    assert!(
        e.contains("mis-shaped dense.kernel (file [30, 128], model [30, 8])")
            && e.contains("unexpected")
            && e.contains("dense_2.kernel"),
        "{e}"
    );
    std::fs::remove_file(&path).ok();
}

#[test]
fn a_nan_loss_with_terminate_on_nan_stops_with_a_message() {
    let device = device();
    let (train, _) = data();
    let mut m = mlp(&device, 1);
    // A diverged model: its first layer's weights are NaN.
    m.set_weight("dense.kernel", &[f32::NAN; 30 * 128]).unwrap();
    let h = m
        .fit(
            &train,
            Fit::epochs(5)
                .verbosity(Verbosity::Silent)
                .callback(TerminateOnNaN),
        )
        .unwrap();
    assert_eq!(
        h.epochs.len(),
        1,
        "stopped after the first epoch: {:?}",
        h.series("loss")
    );
    let reason = h.stop_reason.expect("a reason");
    assert!(
        reason.contains("NaN") && reason.contains("epoch 1"),
        "{reason}"
    );
}

#[test]
fn misuse_is_an_error_naming_what_is_wrong() {
    let device = device();
    let mut m = mlp(&device, 0);
    let e = m
        .set_weight("dense.kernel", &[0.0; 29 * 128])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("dense.kernel") && e.contains("3712") && e.contains("[30, 128]"),
        "{e}"
    );
    let bad = Dataset::new(vec![0.0; 29 * 4], vec![0.0; 4], 29, 1).unwrap();
    let e = m
        .fit(&bad, Fit::epochs(1).verbosity(Verbosity::Silent))
        .unwrap_err()
        .to_string();
    assert!(e.contains("shape [29]") && e.contains("takes [30]"), "{e}");
    let mut zero = Sequential::new(&device, 4)
        .dense(3, Activation::Relu)
        .dropout(1.5);
    let e = zero
        .compile(Optimizer::adam(1e-3), Loss::MeanSquaredError, &[])
        .unwrap_err()
        .to_string();
    assert!(e.contains("dropout") && e.contains("1.5"), "{e}");
    let e = m
        .train_on_batch(&[0.0; 30], &[0.0, 1.0])
        .unwrap_err()
        .to_string();
    assert!(e.contains("2 target values for 1 samples"), "{e}");
    let e = m
        .compile(Optimizer::adam(-1.0), Loss::BinaryCrossEntropy, &[])
        .unwrap_err()
        .to_string();
    assert!(e.contains("learning rate"), "{e}");
}

#[test]
fn learning_rate_schedules() {
    assert_eq!(LrSchedule::Constant.at(0.1, 50), 0.1);
    let step = LrSchedule::Step {
        every: 10,
        factor: 0.5,
    };
    assert_eq!(
        (step.at(0.1, 9), step.at(0.1, 10), step.at(0.1, 25)),
        (0.1, 0.05, 0.025)
    );
    let cos = LrSchedule::Cosine {
        epochs: 10,
        min_lr: 0.0,
    };
    assert!((cos.at(1.0, 5) - 0.5).abs() < 1e-6 && cos.at(1.0, 10).abs() < 1e-6);
}

#[test]
fn batch_norm_running_statistics_follow_each_framework() {
    // One training step on a batch; the moving statistics of a batch norm on
    // the raw input are then known on the host.
    let device = device();
    let x: Vec<f32> = (0..8 * 4)
        .map(|i| ((i * 7 % 11) as f32) * 0.3 - 1.0)
        .collect();
    let y = vec![0.5f32; 8];
    let (mut mean, mut var) = ([0.0f64; 4], [0.0f64; 4]);
    for c in 0..4 {
        let col: Vec<f64> = (0..8).map(|r| x[r * 4 + c] as f64).collect();
        mean[c] = col.iter().sum::<f64>() / 8.0;
        var[c] = col.iter().map(|v| (v - mean[c]).powi(2)).sum::<f64>() / 8.0;
    }
    for (config, keep, var_factor) in [
        (BatchNormConfig::KERAS, 0.99, 1.0),
        (BatchNormConfig::PYTORCH, 0.9, 8.0 / 7.0),
    ] {
        let mut m = Sequential::new(&device, 4)
            .batch_norm_with(config)
            .dense(1, Activation::None);
        m.compile(Optimizer::sgd(0.1), Loss::MeanSquaredError, &[])
            .unwrap();
        m.train_on_batch(&x, &y).unwrap();
        let (mean_name, var_name) = match config.naming {
            Naming::Keras => ("moving_mean", "moving_variance"),
            Naming::PyTorch => ("running_mean", "running_var"),
        };
        let got_mean = m
            .value(&format!("batch_normalization.{mean_name}"))
            .unwrap();
        let got_var = m.value(&format!("batch_normalization.{var_name}")).unwrap();
        for c in 0..4 {
            let want_mean = (1.0 - keep) * mean[c];
            let want_var = keep + (1.0 - keep) * var_factor * var[c];
            assert!(
                (got_mean[c] as f64 - want_mean).abs() < 1e-6,
                "{config:?} mean[{c}]"
            );
            assert!(
                (got_var[c] as f64 - want_var).abs() < 1e-5,
                "{config:?} var[{c}]"
            );
        }
        if config.naming == Naming::PyTorch {
            let count = m.value("batch_normalization.num_batches_tracked").unwrap();
            assert_eq!(count, vec![1.0], "one batch tracked");
        }
    }
}

/// The tutorial's MLP at a learning rate high enough that the validation
/// loss rises again within a few epochs, so the best epoch is not the last.
fn jumpy_mlp(device: &Device) -> Sequential {
    common::tutorial_mlp_with(device, 6, Optimizer::adam(0.05))
}

/// What ModelCheckpoint and CSVLogger write, read back: the checkpoint
/// holds, bit for bit, the weights of a deterministic run stopped at the
/// best epoch (so it reloads to the same predictions), and the CSV's rows
/// are the history's values.
#[test]
fn model_checkpoint_and_csv_logger_write_what_the_run_had() {
    let device = device();
    let (train, test) = data();
    let dir = std::env::temp_dir().join(format!("kiln-callbacks-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (ckpt, csv) = (dir.join("best.ckpt"), dir.join("log.csv"));
    let fit = |epochs: usize| {
        Fit::epochs(epochs)
            .validation_split(0.2)
            .verbosity(Verbosity::Silent)
    };
    const EPOCHS: usize = 8;
    let mut a = jumpy_mlp(&device);
    let history = a
        .fit(
            &train,
            fit(EPOCHS)
                .callback(ModelCheckpoint::best_only(&ckpt, "val_loss"))
                .callback(CsvLogger::new(&csv)),
        )
        .unwrap();
    let val = history.series("val_loss");
    assert_eq!(val.len(), EPOCHS);
    let best = 1 + (0..EPOCHS).fold(0, |b, e| if val[e] < val[b] { e } else { b });
    assert!(
        best < EPOCHS,
        "the best epoch must come before the last: {val:?}"
    );

    // The same model trained to the best epoch only.
    let mut b = jumpy_mlp(&device);
    b.fit(&train, fit(best)).unwrap();
    let mut c = jumpy_mlp(&device);
    for (name, w) in c.weights().unwrap() {
        c.set_weight(&name, &vec![0.5; w.len()]).unwrap();
    }
    assert_eq!(
        checkpoint::load(&mut c, &ckpt).unwrap(),
        best,
        "val_loss {val:?}"
    );
    for (name, want) in b.weights().unwrap() {
        compare::assert_bit_identical(&name, &c.value(&name).unwrap(), &want);
    }
    let (pb, pc) = (b.predict(&test, 50).unwrap(), c.predict(&test, 50).unwrap());
    compare::assert_bit_identical("predictions", pc.data(), pb.data());

    let text = std::fs::read_to_string(&csv).unwrap();
    let mut lines = text.lines();
    let names = history.names();
    assert_eq!(lines.next().unwrap(), format!("epoch,{}", names.join(",")));
    let rows: Vec<&str> = lines.collect();
    assert_eq!(rows.len(), EPOCHS, "{text}");
    for (e, row) in rows.iter().enumerate() {
        let cells: Vec<&str> = row.split(',').collect();
        assert_eq!(cells.len(), names.len() + 1, "{row}");
        assert_eq!(cells[0].parse::<usize>().unwrap(), e + 1, "{row}");
        for (name, cell) in names.iter().zip(&cells[1..]) {
            let want = history.series(name)[e];
            assert_eq!(
                cell.parse::<f32>().unwrap().to_bits(),
                want.to_bits(),
                "{name} at epoch {}",
                e + 1
            );
        }
    }
    std::fs::remove_dir_all(&dir).ok();
}
