//! Mistakes a new user makes, each refused at once with one error that
//! names what was wrong, what was expected and where (the data set's row,
//! the loss and the output shape), and with nothing trained first.

use kiln::prelude::*;

const ROWS: usize = 40;
const FEATURES: usize = 4;
const CLASSES: usize = 10;

fn device() -> Device {
    kiln::device_from_flag(None).expect("an adapter")
}

fn classifier(device: &Device) -> Sequential {
    let mut m = Sequential::new(device, FEATURES)
        .seed(1)
        .dense(CLASSES, Activation::None);
    m.compile(
        Optimizer::sgd(0.1),
        Loss::SparseCategoricalCrossEntropyFromLogits,
        &[Metric::SparseCategoricalAccuracy],
    )
    .unwrap();
    m
}

fn rows(bad_label_row: Option<usize>, bad_feature_row: Option<usize>) -> Dataset {
    let mut x: Vec<f32> = (0..ROWS * FEATURES).map(|i| (i % 7) as f32 / 7.0).collect();
    let mut y: Vec<f32> = (0..ROWS).map(|r| (r % CLASSES) as f32).collect();
    if let Some(r) = bad_label_row {
        y[r] = 12.0;
    }
    if let Some(r) = bad_feature_row {
        x[r * FEATURES + 2] = f32::NAN;
    }
    Dataset::new(x, y, FEATURES, 1).unwrap()
}

fn fit_cfg() -> Fit {
    Fit::epochs(2)
        .batch_size(8)
        .shuffle(None)
        .verbosity(Verbosity::Silent)
}

#[test]
fn a_bad_label_is_refused_before_any_step_naming_its_row() {
    let device = device();
    let mut m = classifier(&device);
    let before = m.weights().unwrap();
    let e = m
        .fit(&rows(Some(37), None), fit_cfg())
        .unwrap_err()
        .to_string();
    assert!(e.contains("row 37 of the data"), "{e}");
    assert!(
        e.contains("target 12") && e.contains("not a class index in 0..10"),
        "{e}"
    );
    assert!(e.contains("before the first step"), "{e}");
    assert_eq!(m.steps(), 0, "no optimizer step ran");
    assert_eq!(m.weights().unwrap(), before, "nothing trained");
    // The validation data is checked as well, and said to be it.
    let e = m
        .fit(
            &rows(None, None),
            fit_cfg().validation_data(rows(Some(3), None)),
        )
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("validation data: ") && e.contains("row 3 of the data"),
        "{e}"
    );
    assert_eq!(m.steps(), 0);
    // evaluate names the row too.
    let e = m
        .evaluate(&rows(Some(21), None), 8)
        .unwrap_err()
        .to_string();
    assert!(e.contains("row 21 of the data"), "{e}");
}

#[test]
fn a_non_finite_feature_is_refused_before_any_step_naming_row_and_column() {
    let device = device();
    let mut m = classifier(&device);
    let e = m
        .fit(&rows(None, Some(29)), fit_cfg())
        .unwrap_err()
        .to_string();
    assert!(e.contains("row 29 of the data has feature 2 = NaN"), "{e}");
    assert_eq!(m.steps(), 0);
}

#[test]
fn cross_entropy_over_one_class_is_refused_at_compile() {
    let device = device();
    let mut m = Sequential::new(&device, FEATURES).dense(1, Activation::None);
    for loss in [
        Loss::SparseCategoricalCrossEntropyFromLogits,
        Loss::SparseCategoricalCrossEntropy,
        Loss::CategoricalCrossEntropyFromLogits,
        Loss::CategoricalCrossEntropy,
    ] {
        let e = m
            .compile(Optimizer::sgd(0.1), loss, &[])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(&format!("{loss:?} needs at least 2 classes"))
                && e.contains("output per sample is [1]")
                && e.contains("BinaryCrossEntropy"),
            "{e}"
        );
    }
    // The pairs that fit one output still compile.
    m.compile(Optimizer::sgd(0.1), Loss::BinaryCrossEntropyFromLogits, &[])
        .unwrap();
}

#[test]
fn predict_with_batch_zero_is_an_error_as_evaluate_is() {
    let device = device();
    let mut m = classifier(&device);
    let data = rows(None, None);
    let e = m.predict(&data, 0).unwrap_err().to_string();
    assert!(e.contains("positive batch size"), "{e}");
    let e = m.evaluate(&data, 0).unwrap_err().to_string();
    assert!(e.contains("positive batch size"), "{e}");
    assert_eq!(m.predict(&data, 7).unwrap().shape(), &[ROWS, CLASSES]);
}

#[test]
fn summary_of_a_builder_whose_layer_failed_is_that_error() {
    let device = device();
    // An LSTM needs samples [timesteps, features]; this one gets [4].
    let mut m = Sequential::new(&device, FEATURES)
        .dense(8, Activation::Relu)
        .lstm(5, Activation::Tanh, false)
        .dense(1, Activation::None);
    let e = m.summary().unwrap_err().to_string();
    assert!(
        e.contains("lstm (layer 2)") && e.contains("[timesteps, features]"),
        "{e}"
    );
}

/// An error says each thing once: its text does not repeat itself, and its
/// source chain (what anyhow prints under `Caused by:`) adds nothing that
/// the text already said.
#[test]
fn a_layer_error_says_each_thing_once() {
    let device = device();
    let conv = kiln::models::Conv2d::new(&device, 1, 4, 3).unwrap();
    let mut m = Sequential::new(&device, 784).layer("conv2d", conv);
    let e = m.predict(&(&[0.5; 784][..], &[1, 784][..]), 1).unwrap_err();
    let text = e.to_string();
    assert!(text.starts_with("layer \"conv2d\": "), "{text}");
    let chain: Vec<String> = std::iter::successors(std::error::Error::source(&e), |s| s.source())
        .map(|s| s.to_string())
        .collect();
    for cause in &chain {
        assert!(
            !text.contains(cause.as_str()),
            "{text:?} repeats its cause {cause:?}"
        );
    }
    let after_layer = &text["layer \"conv2d\": ".len()..];
    let half = after_layer.len() / 2;
    assert!(
        !after_layer[half..].contains(&after_layer[..half.min(24)]),
        "{text:?} says the same thing twice"
    );
}

/// Mesa's drivers print `error: XDG_RUNTIME_DIR is invalid or not set` when
/// the variable is unset; kiln gives the process a private one first, so a
/// plain run is quiet.
#[test]
fn a_run_without_xdg_runtime_dir_prints_no_driver_noise() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kiln"))
        .arg("devices")
        .env_remove("XDG_RUNTIME_DIR")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "kiln devices failed: {stderr}");
    assert!(!out.stdout.is_empty(), "kiln devices listed no adapter");
    assert!(
        !stderr.contains("XDG_RUNTIME_DIR"),
        "driver noise: {stderr}"
    );
}

/// Defect 1 of issue 27: six rows of 25 features (150 values) given to a
/// model of 30 features used to come back as five rows. The input carries
/// its shape now, and a wrong feature count or row count is an error.
#[test]
fn predict_refuses_samples_of_the_wrong_shape_instead_of_regrouping_them() {
    let device = device();
    let mut m = Sequential::new(&device, 30)
        .seed(3)
        .dense(1, Activation::Sigmoid);
    let six_by_25 = Array::new(vec![0.5; 150], &[6, 25]).unwrap();
    let e = m.predict(&six_by_25, 8).unwrap_err().to_string();
    assert!(
        e.contains("6 samples of shape [25]") && e.contains("input shape is [30]"),
        "{e}"
    );
    let e = m
        .predict(&(&[0.5f32; 150][..], &[6, 30][..]), 8)
        .unwrap_err()
        .to_string();
    assert!(e.contains("150 values for shape [6, 30]"), "{e}");
    let five = Array::new(vec![0.5; 150], &[5, 30]).unwrap();
    assert_eq!(m.predict(&five, 8).unwrap().shape(), &[5, 1]);
}

/// Defect 5 of issue 27: a convolution given flat input was blamed on the
/// dense layer after it, and nothing said the declared input shape was the
/// likely mistake ([784] where [1, 28, 28] was meant).
#[test]
fn a_failing_layer_names_itself_and_the_declared_input_shape() {
    let device = device();
    let conv = kiln::models::Conv2d::new(&device, 1, 4, 3).unwrap();
    let mut m = Sequential::new(&device, 784)
        .layer("conv2d", conv)
        .flatten()
        .dense(10, Activation::None);
    let e = m
        .compile(
            Optimizer::adam(1e-3),
            Loss::SparseCategoricalCrossEntropyFromLogits,
            &[],
        )
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("layer \"conv2d\": "), "{e}");
    assert!(e.contains("declared as [784]"), "{e}");
    assert!(!e.contains("dense"), "blames a later layer: {e}");
    // An LSTM given 5 features where 3 were declared says so in those terms.
    let mut m = Sequential::new(&device, [10, 5])
        .layer("lstm", kiln::models::Lstm::keras(&device, 3, 8).unwrap());
    let e = m.summary().unwrap_err().to_string();
    assert!(
        e.contains("takes 3 features per timestep") && e.contains("[1, 10, 5]"),
        "{e}"
    );
}

/// Each mistake is a typed error a program can match on, not only text.
#[test]
fn each_mistake_is_its_own_error_variant() {
    use kiln::models::ModelError;
    let device = device();
    let mut uncompiled = Sequential::new(&device, FEATURES).dense(CLASSES, Activation::None);
    assert!(matches!(
        uncompiled.fit(&rows(None, None), fit_cfg()),
        Err(ModelError::NotCompiled { call: "fit()" })
    ));
    let mut m = classifier(&device);
    match m.fit(&rows(Some(5), None), fit_cfg()) {
        Err(ModelError::FitRefused { what: "", error }) => {
            assert!(matches!(*error, ModelError::Values(_)), "{error}")
        }
        other => panic!("expected FitRefused, got {other:?}"),
    }
    assert!(matches!(
        m.train_on_batch(&[0.5; FEATURES + 1], &[1.0]),
        Err(ModelError::Shape(_))
    ));
    match m.tensor("dense.kernel_typo") {
        Err(ModelError::NotFound {
            kind: "tensor",
            name,
            available,
        }) => {
            assert_eq!(name, "dense.kernel_typo");
            assert!(
                available.iter().any(|n| n == "dense.kernel"),
                "{available:?}"
            );
        }
        other => panic!("expected NotFound, got {other:?}"),
    }
    assert!(matches!(
        m.set_learning_rate(f32::INFINITY),
        Err(ModelError::Settings(_))
    ));
    let mut broken = Sequential::new(&device, FEATURES)
        .dense(8, Activation::Relu)
        .lstm(5, Activation::Tanh, false);
    match broken.summary() {
        Err(ModelError::Builder(e)) => match &*e {
            ModelError::Building {
                kind: "lstm",
                index: 2,
                error,
            } => assert!(matches!(**error, ModelError::Shape(_)), "{error}"),
            other => panic!("expected Building, got {other:?}"),
        },
        other => panic!("expected Builder, got {other:?}"),
    }
}
