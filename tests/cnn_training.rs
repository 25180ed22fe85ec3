//! The CNN example's pipeline learns: on part of the Fashion-MNIST subset
//! (a quick run of the same code `cargo run --example cnn` runs), on the
//! same images given as a folder of raw IDX files, and on an ImageFolder
//! tree of generated images.

use std::io::Read;
use std::path::{Path, PathBuf};

use clap::Parser;
use kiln::data::ImageLayout;
use kiln::prelude::*;

#[path = "../examples/cnn.rs"]
#[allow(dead_code)]
mod cnn;

fn device() -> Device {
    Device::auto().expect("an adapter: apt-get install -y libvulkan1 mesa-vulkan-drivers")
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("kiln-cnn-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn args(extra: &[&str]) -> cnn::Args {
    // Seed 0: the figures these bounds were set on.
    let mut argv = vec!["cnn", "--quiet", "--seed", "0"];
    argv.extend(extra);
    cnn::Args::parse_from(argv)
}

#[test]
fn cnn_learns_fashion_mnist_from_gzip_or_raw_idx_alike() {
    let device = device();
    let quick = ["--limit", "2000", "--epochs", "1"];
    let gz = cnn::run(&device, &args(&quick)).unwrap();
    assert_eq!(gz.layout, ImageLayout::Idx);
    assert_eq!((gz.train_images, gz.test_images), (2000, 2000));
    // Ten classes: chance is 0.1. One epoch on 2000 images learns far more.
    assert!(
        gz.test_accuracy >= 0.65,
        "test accuracy {}",
        gz.test_accuracy
    );

    // The same files, decompressed, in another folder.
    let dir = scratch("raw-idx");
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/fashion-mnist");
    for entry in std::fs::read_dir(&src).unwrap() {
        let path = entry.unwrap().path();
        let mut raw = Vec::new();
        flate2::read::GzDecoder::new(std::fs::File::open(&path).unwrap())
            .read_to_end(&mut raw)
            .unwrap();
        let name = path.file_stem().unwrap();
        std::fs::write(dir.join(name), raw).unwrap();
    }
    let data = dir.to_str().unwrap();
    let raw = cnn::run(&device, &args(&[&quick[..], &["--data", data]].concat())).unwrap();
    assert_eq!(
        raw.test_accuracy, gz.test_accuracy,
        "the same images train the same"
    );
}

#[test]
fn cnn_learns_an_image_folder_tree() {
    // Two classes of 12×12 RGB images: a bright square top-left or bottom-right.
    let dir = scratch("folder");
    for (class, corner) in [("top_left", 0u32), ("bottom_right", 6)] {
        for split in ["train", "test"] {
            let d = dir.join(split).join(class);
            std::fs::create_dir_all(&d).unwrap();
            for i in 0..24u32 {
                let img = image::RgbImage::from_fn(12, 12, |x, y| {
                    let inside =
                        (corner..corner + 6).contains(&x) && (corner..corner + 6).contains(&y);
                    let v = if inside {
                        200 + (i % 50) as u8
                    } else {
                        (i * 3 % 40) as u8
                    };
                    image::Rgb([v, v / 2, 255 - v])
                });
                img.save(d.join(format!("{i}.png"))).unwrap();
            }
        }
    }
    let data = dir.to_str().unwrap();
    let out = cnn::run(
        &device(),
        &args(&[
            "--data",
            data,
            "--size",
            "12",
            "--epochs",
            "6",
            "--batch-size",
            "8",
        ]),
    )
    .unwrap();
    assert_eq!(
        out.layout,
        ImageLayout::ImageFolder {
            classes: vec!["bottom_right".into(), "top_left".into()]
        }
    );
    assert_eq!(out.test_accuracy, 1.0, "{out:?}");
}
