//! Loading, splitting, standardising and batching, checked against facts of
//! the data set (its README) and against direct computation.

use kiln_data::{batch_order, CsvDataset, DataError, Dataset, Standardizer};

const CSV: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../data/breast_cancer.csv");

#[test]
fn breast_cancer_loads_with_its_documented_shape() {
    let d = CsvDataset::load(CSV, "target").unwrap();
    assert_eq!(d.len(), 569);
    assert_eq!(d.n_features(), 30);
    assert_eq!(d.feature_names()[0], "mean radius");
    assert_eq!(d.feature_names()[29], "worst fractal dimension");
    let benign = d.targets().iter().filter(|&&t| t == 1.0).count();
    assert_eq!(benign, 357, "212 malignant (0), 357 benign (1)");
    assert_eq!(d.features()[0], 17.99);
    // rows 0–31 hold 29 malignant and 3 benign
    assert_eq!(d.targets()[..32].iter().filter(|&&t| t == 1.0).count(), 3);
}

#[test]
fn bad_files_are_errors_that_say_what_is_wrong() {
    let e = CsvDataset::load(CSV, "label").unwrap_err().to_string();
    assert!(e.contains("no column named \"label\""), "{e}");
    let e = CsvDataset::load("/nonexistent/file.csv", "target").unwrap_err();
    assert!(matches!(e, DataError::Io { .. }), "{e}");
    let dir = std::env::temp_dir().join("kiln_bad.csv");
    std::fs::write(&dir, "a,target\n1.0,0\nx,1\n").unwrap();
    let e = CsvDataset::load(&dir, "target").unwrap_err().to_string();
    assert!(
        e.contains("line 3") && e.contains("\"x\" is not a number"),
        "{e}"
    );
}

#[test]
fn seeded_split_is_a_reproducible_partition() {
    let d = CsvDataset::load(CSV, "target").unwrap();
    let (a, b) = d.split(0.8, 7).unwrap();
    assert_eq!((a.len(), b.len()), (455, 114));
    assert_eq!(d.split(0.8, 7).unwrap().0, a, "same seed, same split");
    assert_ne!(d.split(0.8, 8).unwrap().0, a, "another seed, another split");
    // Every row lands on exactly one side: compare multisets of first features.
    let mut all: Vec<u32> = d.features().chunks(30).map(|r| r[0].to_bits()).collect();
    let mut parts: Vec<u32> = a
        .features()
        .chunks(30)
        .chain(b.features().chunks(30))
        .map(|r| r[0].to_bits())
        .collect();
    all.sort();
    parts.sort();
    assert_eq!(all, parts);
    assert!(d.split(1.0, 0).is_err());
}

#[test]
fn validation_split_takes_the_unshuffled_tail_like_keras() {
    let d = Dataset::new((0..10).map(|i| i as f32).collect(), vec![0.0; 10], 1, 1).unwrap();
    let (train, val) = d.split_tail(0.2).unwrap();
    assert_eq!(train.features(), &[0., 1., 2., 3., 4., 5., 6., 7.]);
    assert_eq!(val.features(), &[8., 9.]);
    // Keras 3 splits at ceil(n · (1 − fraction)): 7 rows, 0.25 → 6 | 1.
    let d7 = Dataset::new(vec![0.0; 7], vec![0.0; 7], 1, 1).unwrap();
    let (t, v) = d7.split_tail(0.25).unwrap();
    assert_eq!((t.len(), v.len()), (6, 1));
}

#[test]
fn standardizer_uses_training_statistics_only() {
    let train = Dataset::new(vec![1.0, 10.0, 3.0, 10.0], vec![0.0, 1.0], 2, 1).unwrap();
    let s = Standardizer::fit(&train);
    assert_eq!(s.mean, vec![2.0, 10.0]);
    assert_eq!(
        s.scale,
        vec![1.0, 1.0],
        "population std of [1, 3] is 1; constant feature → 1"
    );
    let mut test = Dataset::new(vec![5.0, 12.0], vec![0.0], 2, 1).unwrap();
    s.transform(&mut test).unwrap();
    assert_eq!(test.features(), &[3.0, 2.0]);
    let mut wrong = Dataset::new(vec![1.0], vec![0.0], 1, 1).unwrap();
    assert!(s.transform(&mut wrong).is_err());
}

#[test]
fn batches_cover_every_row_once_and_keep_the_remainder() {
    let b = batch_order(70, 32, Some(3), 0);
    assert_eq!(b.iter().map(Vec::len).collect::<Vec<_>>(), vec![32, 32, 6]);
    let mut seen: Vec<usize> = b.concat();
    seen.sort();
    assert_eq!(seen, (0..70).collect::<Vec<_>>());
    assert_ne!(b, batch_order(70, 32, Some(3), 1), "each epoch reshuffles");
    assert_eq!(
        b,
        batch_order(70, 32, Some(3), 0),
        "same seed and epoch, same order"
    );
}
