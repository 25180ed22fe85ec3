//! Image data: the IDX, CIFAR-10 and ImageFolder readers against the data
//! set's documented facts and against files written here byte by byte;
//! every kind of broken file is an error naming the file; augmentation and
//! the background loader against direct computation.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use kiln_data::*;

const FASHION: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../data/fashion-mnist");

/// A fresh, empty folder for one test.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("kiln-data-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn idx_bytes(dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut b = vec![0, 0, 0x08, dims.len() as u8];
    for d in dims {
        b.extend(d.to_be_bytes());
    }
    b.extend(data);
    b
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

fn assert_error_names(err: DataError, file: &Path, words: &str) {
    let text = err.to_string();
    assert!(
        text.contains(&file.display().to_string()),
        "{text} should name {}",
        file.display()
    );
    assert!(text.contains(words), "{text} should say {words:?}");
}

#[test]
fn fashion_mnist_subset_matches_its_readme() {
    let dir = Path::new(FASHION);
    let train = load_idx(
        dir.join("train-images-idx3-ubyte.gz"),
        dir.join("train-labels-idx1-ubyte.gz"),
    )
    .unwrap();
    let test = load_idx(
        dir.join("t10k-images-idx3-ubyte.gz"),
        dir.join("t10k-labels-idx1-ubyte.gz"),
    )
    .unwrap();
    assert_eq!((train.len(), test.len()), (10_000, 2_000));
    assert_eq!(train.sample_shape(), &[1, 28, 28]);
    let counts = |d: &Dataset| {
        let mut c = [0usize; 10];
        for &t in d.targets() {
            c[t as usize] += 1;
        }
        c
    };
    assert_eq!(
        counts(&train),
        [942, 1027, 1016, 1019, 974, 989, 1021, 1022, 990, 1000]
    );
    assert_eq!(
        counts(&test),
        [200, 203, 214, 190, 219, 195, 197, 200, 194, 188]
    );
    assert!(train.features().iter().all(|&p| (0.0..=1.0).contains(&p)));
    // The same layout detected from the folder.
    let opts = FolderOptions {
        size: [28, 28],
        channels: 1,
        test_fraction: 0.2,
        seed: 0,
    };
    let sets = load_image_dir(dir, &opts).unwrap();
    assert_eq!(sets.layout, ImageLayout::Idx);
    assert_eq!(sets.test.targets(), test.targets());
}

#[test]
fn idx_reads_raw_and_gzip_alike_and_rejects_broken_files() {
    let dir = scratch("idx");
    let pixels: Vec<u8> = (0..2 * 3 * 4).map(|i| (i * 10) as u8).collect();
    let raw = idx_bytes(&[2, 3, 4], &pixels);
    std::fs::write(dir.join("raw"), &raw).unwrap();
    std::fs::write(dir.join("zipped"), gzip(&raw)).unwrap();
    for name in ["raw", "zipped"] {
        let idx = read_idx(dir.join(name)).unwrap();
        assert_eq!(idx.dims, vec![2, 3, 4]);
        assert_eq!(idx.data, pixels);
    }
    std::fs::write(dir.join("labels"), idx_bytes(&[2], &[7, 1])).unwrap();
    let d = load_idx(dir.join("raw"), dir.join("labels")).unwrap();
    assert_eq!(d.sample_shape(), &[1, 3, 4]);
    assert_eq!(d.targets(), &[7.0, 1.0]);
    assert_eq!(d.features()[5], 50.0 / 255.0);

    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("short", raw[..raw.len() - 3].to_vec(), "truncated"),
        ("short.gz", gzip(&raw[..raw.len() - 3]), "truncated"),
        (
            "cut.gz",
            gzip(&raw)[..20].to_vec(),
            "gzip data is corrupt or truncated",
        ),
        (
            "magic",
            b"\x12\x34\x08\x01\0\0\0\x01\0".to_vec(),
            "not an IDX file",
        ),
        (
            "type",
            idx_bytes(&[1], &[0])
                .iter()
                .enumerate()
                .map(|(i, &b)| if i == 2 { 0x0d } else { b })
                .collect(),
            "element type 0x0d",
        ),
        ("header", vec![0, 0, 8, 3, 0, 0], "truncated IDX header"),
        ("empty", vec![], "not an IDX file"),
    ];
    for (name, bytes, words) in cases {
        let p = dir.join(name);
        std::fs::write(&p, bytes).unwrap();
        assert_error_names(read_idx(&p).unwrap_err(), &p, words);
    }
    // Labels that do not match the images.
    std::fs::write(dir.join("three"), idx_bytes(&[3], &[0, 1, 2])).unwrap();
    let e = load_idx(dir.join("raw"), dir.join("three")).unwrap_err();
    assert_error_names(e, &dir.join("three"), "3 labels for the 2 images");
    let e = read_idx(dir.join("missing")).unwrap_err();
    assert!(matches!(e, DataError::Io { .. }), "{e}");
}

#[test]
fn cifar10_records_and_broken_files() {
    let dir = scratch("cifar");
    let record = |label: u8, seed: u8| {
        let mut r = vec![label];
        r.extend((0..3072).map(|i| (i as u8).wrapping_mul(seed)));
        r
    };
    let mut train = Vec::new();
    for (k, l) in [3u8, 9, 0].iter().enumerate() {
        train.extend(record(*l, k as u8 + 1));
    }
    std::fs::write(dir.join("data_batch_1.bin"), &train).unwrap();
    std::fs::write(dir.join("test_batch.bin"), record(5, 7)).unwrap();
    let d = load_cifar10(&[dir.join("data_batch_1.bin")]).unwrap();
    assert_eq!(d.len(), 3);
    assert_eq!(d.sample_shape(), &[3, 32, 32]);
    assert_eq!(d.targets(), &[3.0, 9.0, 0.0]);
    // Record 1's green plane starts at byte 1 + 1024 of the record.
    let green0 = d.features()[3072 + 1024];
    assert_eq!(green0, ((1024 % 256) as u8).wrapping_mul(2) as f32 / 255.0);
    let opts = FolderOptions {
        size: [32, 32],
        channels: 3,
        test_fraction: 0.2,
        seed: 0,
    };
    let sets = load_image_dir(&dir, &opts).unwrap();
    assert_eq!(sets.layout, ImageLayout::Cifar10);
    assert_eq!((sets.train.len(), sets.test.len()), (3, 1));

    let cut = dir.join("cut.bin");
    std::fs::write(&cut, &train[..5000]).unwrap();
    assert_error_names(
        load_cifar10(&[&cut]).unwrap_err(),
        &cut,
        "not a whole number of 3073-byte",
    );
    let bad = dir.join("label.bin");
    std::fs::write(&bad, record(12, 1)).unwrap();
    assert_error_names(
        load_cifar10(&[&bad]).unwrap_err(),
        &bad,
        "record 0 has label 12",
    );
}

/// Writes a `w`×`h` RGB PNG whose pixel (x, y) is (x·40, y·40, 200).
fn write_png(path: &Path, w: u32, h: u32) {
    let img = image::RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([(x * 40) as u8, (y * 40) as u8, 200])
    });
    img.save(path).unwrap();
}

/// Keras' `image_dataset_from_directory` shuffles (seeded) by default; a
/// folder read in class order gave `validation_split` (the last fraction)
/// only the last class. Each image's red level says its class, so the
/// shuffle is seen to move images and labels together.
#[test]
fn image_folders_come_shuffled_so_a_tail_split_holds_several_classes() {
    let dir = scratch("folder-shuffled");
    for class in 0..3u8 {
        let d = dir.join(format!("digit{class}"));
        std::fs::create_dir_all(&d).unwrap();
        for i in 0..10 {
            image::RgbImage::from_pixel(2, 2, image::Rgb([class * 80, 0, 0]))
                .save(d.join(format!("{i}.png")))
                .unwrap();
        }
    }
    let classes_of = |data: &Dataset| {
        let mut c: Vec<usize> = data.targets().iter().map(|&t| t as usize).collect();
        c.sort();
        c.dedup();
        c
    };
    let f = ImageFolder::load(&dir, [2, 2], 3).unwrap();
    for (row, &label) in f.data.targets().iter().enumerate() {
        let red = f.data.features()[row * 12];
        assert_eq!(
            red,
            label * 80.0 / 255.0,
            "row {row}: image and label apart"
        );
    }
    let counts: Vec<usize> = (0..3)
        .map(|c| f.data.targets().iter().filter(|&&t| t == c as f32).count())
        .collect();
    assert_eq!(counts, [10, 10, 10]);
    let (_, val) = f.data.split_tail(0.2).unwrap();
    assert!(
        classes_of(&val).len() >= 2,
        "validation holds {:?}",
        classes_of(&val)
    );
    // Another seed, another order; file order on request.
    let other = ImageFolder::load_with(&dir, [2, 2], 3, Some(7)).unwrap();
    assert_ne!(other.data.targets(), f.data.targets());
    let ordered = ImageFolder::load_with(&dir, [2, 2], 3, None).unwrap();
    let (_, tail) = ordered.data.split_tail(0.2).unwrap();
    assert_eq!(classes_of(&tail), [2]);
}

#[test]
fn image_folders_decode_label_by_class_and_reject_broken_images() {
    let dir = scratch("folder");
    for (split, n) in [("train", 3), ("test", 1)] {
        for class in ["cat", "ant"] {
            let d = dir.join(split).join(class);
            std::fs::create_dir_all(&d).unwrap();
            for i in 0..n {
                write_png(&d.join(format!("{i}.png")), 4, 4);
            }
        }
    }
    let f = ImageFolder::load_with(dir.join("train"), [4, 4], 3, None).unwrap();
    assert_eq!(f.classes, vec!["ant", "cat"], "classes in name order");
    assert_eq!(f.data.targets(), &[0.0, 0.0, 0.0, 1.0, 1.0, 1.0]);
    let img = &f.data.features()[..48];
    // Pixel (x = 2, y = 1): red 80, green 40, blue 200, CHW.
    let at = |c: usize| img[c * 16 + 4 + 2];
    assert_eq!(
        [at(0), at(1), at(2)],
        [80.0 / 255.0, 40.0 / 255.0, 200.0 / 255.0]
    );
    // Resized and grey: one plane of the requested size.
    let grey = ImageFolder::load(dir.join("train"), [2, 3], 1).unwrap();
    assert_eq!(grey.data.sample_shape(), &[1, 2, 3]);
    let opts = FolderOptions {
        size: [4, 4],
        channels: 3,
        test_fraction: 0.2,
        seed: 0,
    };
    let sets = load_image_dir(&dir, &opts).unwrap();
    assert_eq!((sets.train.len(), sets.test.len()), (6, 2));
    assert_eq!(
        sets.layout,
        ImageLayout::ImageFolder {
            classes: vec!["ant".into(), "cat".into()]
        }
    );

    let broken = dir.join("train").join("cat").join("broken.png");
    std::fs::write(&broken, b"\x89PNG\r\n\x1a\nnot really").unwrap();
    let e = ImageFolder::load(dir.join("train"), [4, 4], 3).unwrap_err();
    assert_error_names(e, &broken, "cannot decode the image");
    let e = ImageFolder::load(dir.join("nowhere"), [4, 4], 3).unwrap_err();
    assert!(matches!(e, DataError::Io { .. }), "{e}");
    let empty = scratch("empty-folder");
    assert_error_names(
        ImageFolder::load(&empty, [4, 4], 3).unwrap_err(),
        &empty,
        "no class sub-folders",
    );
}

#[test]
fn padding_and_channel_normalisation() {
    let images: Vec<f32> = (0..2 * 2 * 2 * 3).map(|i| i as f32).collect();
    let d = Dataset::with_shapes(images, &[2, 2, 3], vec![0.0, 1.0], &[]).unwrap();
    let p = pad_images(&d, 1).unwrap();
    assert_eq!(p.sample_shape(), &[2, 4, 5]);
    // Image 1, channel 1, row 1, column 2 was at (y 0, x 1): 6·2 + 6 + 1.
    assert_eq!(p.features()[40 + 20 + 5 + 2], 19.0);
    assert_eq!(p.features()[0], 0.0);
    let mut n = p.clone();
    let norm = ChannelNorm::fit(&n).unwrap();
    norm.apply(&mut n).unwrap();
    for c in 0..2 {
        let vals: Vec<f64> = (0..2)
            .flat_map(|img| n.features()[img * 40 + c * 20..img * 40 + c * 20 + 20].to_vec())
            .map(|v| v as f64)
            .collect();
        let mean = vals.iter().sum::<f64>() / vals.len() as f64;
        let var = vals.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / vals.len() as f64;
        assert!(
            mean.abs() < 1e-5 && (var - 1.0).abs() < 1e-4,
            "channel {c}: {mean} {var}"
        );
    }
}

#[test]
fn augmentation_crops_and_flips_as_specified() {
    let shape = [1, 3, 4];
    let image: Vec<f32> = (1..=12).map(|i| i as f32).collect();
    // No padding, no flip: the identity.
    let mut b = image.clone();
    Augment {
        pad: 0,
        hflip: false,
    }
    .apply(&mut b, &shape, &mut SplitMix64::new(1))
    .unwrap();
    assert_eq!(b, image);
    // Every result of a padded crop with flips is the image shifted by
    // (dy, dx) in [-pad, pad], maybe mirrored, zero outside.
    let shifted = |dy: isize, dx: isize, flip: bool| -> Vec<f32> {
        let mut out = vec![0.0; 12];
        for y in 0..3isize {
            for x in 0..4isize {
                let sx = if flip { 3 - x } else { x } + dx;
                let sy = y + dy;
                if (0..3).contains(&sy) && (0..4).contains(&sx) {
                    out[(y * 4 + x) as usize] = image[(sy * 4 + sx) as usize];
                }
            }
        }
        out
    };
    let mut seen_flip = [false; 2];
    for seed in 0..40 {
        let mut b = image.clone();
        let a = Augment {
            pad: 1,
            hflip: true,
        };
        a.apply(&mut b, &shape, &mut SplitMix64::new(seed)).unwrap();
        let mut again = image.clone();
        a.apply(&mut again, &shape, &mut SplitMix64::new(seed))
            .unwrap();
        assert_eq!(b, again, "the same seed gives the same crop");
        let found = (-1..=1)
            .flat_map(|dy| (-1..=1).flat_map(move |dx| [(dy, dx, false), (dy, dx, true)]))
            .find(|&(dy, dx, f)| shifted(dy, dx, f) == b);
        let (_, _, flip) = found.unwrap_or_else(|| panic!("seed {seed}: {b:?} is no shifted crop"));
        seen_flip[flip as usize] = true;
    }
    assert_eq!(
        seen_flip,
        [true, true],
        "both flipped and unflipped crops occur"
    );
    let e = Augment {
        pad: 1,
        hflip: false,
    }
    .apply(&mut [0.0; 5], &shape, &mut SplitMix64::new(0));
    assert!(e.is_err());
}

#[test]
fn prefetched_batches_are_the_gathered_ones() {
    let images: Vec<f32> = (0..10 * 12).map(|i| i as f32).collect();
    let targets: Vec<f32> = (0..10).map(|i| i as f32).collect();
    let d = Arc::new(Dataset::with_shapes(images, &[1, 3, 4], targets, &[]).unwrap());
    let order = batch_order(10, 4, Some(3), 0);
    let got: Vec<Batch> = Prefetch::new(d.clone(), order.clone(), None, 0, 2)
        .collect::<Result<_>>()
        .unwrap();
    assert_eq!(got.len(), 3);
    for (b, rows) in got.iter().zip(&order) {
        let (x, y) = d.gather(rows).unwrap();
        assert_eq!((&b.x, &b.y, b.rows), (&x, &y, rows.len()));
    }
    // Augmented: deterministic under the seed, and each image still a crop of its own.
    let aug = Some(Augment {
        pad: 1,
        hflip: true,
    });
    let a: Vec<Batch> = Prefetch::new(d.clone(), order.clone(), aug, 9, 1)
        .collect::<Result<_>>()
        .unwrap();
    let b: Vec<Batch> = Prefetch::new(d.clone(), order.clone(), aug, 9, 3)
        .collect::<Result<_>>()
        .unwrap();
    assert_eq!(a, b);
    assert_eq!(a[0].y, got[0].y);
    // Stopping early neither hangs nor leaks the worker.
    let mut it = Prefetch::new(d, order, None, 0, 1);
    assert!(it.next().is_some());
    drop(it);
}

#[test]
fn a_gzip_bomb_stops_at_the_limit_the_caller_sets() {
    let dir = scratch("gzip-bomb");
    // 64 MiB of zeros behind a consistent header compress to about 64 KiB.
    let side = 8192u32;
    let big = gzip(&idx_bytes(
        &[side, side],
        &vec![0u8; (side * side) as usize],
    ));
    assert!(big.len() < 1 << 17, "{} compressed bytes", big.len());
    let path = dir.join("bomb-idx2-ubyte.gz");
    std::fs::write(&path, &big).unwrap();
    let limit = 1u64 << 20;
    let err = read_idx_limited(&path, limit).unwrap_err();
    assert_error_names(err, &path, &format!("limit of {limit} bytes"));
    // Under the default limit the same file is a valid IDX file, and a
    // limit that fits its header and data exactly reads it.
    let exact = 12 + (side * side) as u64; // magic, two dimensions, data
    assert_eq!(
        read_idx_limited(&path, exact).unwrap().dims,
        vec![8192, 8192]
    );
    assert!(read_idx_limited(&path, exact - 1).is_err());
    assert_eq!(read_idx(&path).unwrap().data.len(), (side * side) as usize);
}
