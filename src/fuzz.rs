//! Fuzzing every file reader kiln has: one entry point per reader that
//! takes arbitrary bytes, shared by the cargo-fuzz targets in `fuzz/` and
//! the bounded smoke run inside `cargo test` (`tests/fuzz_smoke.rs`).
//!
//! A reader passes when it returns, `Ok` or an error, without panicking,
//! hanging or allocating without bound. The bytes go through the public
//! loaders exactly as a user's file would: written to a scratch file, then
//! opened by path.

use std::path::{Path, PathBuf};

use crate::data::{
    load_cifar10, load_idx, load_series, Calendar, CsvDataset, ImageFolder, NonFinite, SeriesSpec,
};
use crate::models::{checkpoint, Activation, Optimizer, Sequential, StateDict};
use crate::Device;

/// The readers under fuzzing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reader {
    /// `CsvDataset::load`, rejecting and then dropping non-finite rows.
    Csv,
    /// `load_series`: windows cut from a dated CSV.
    Series,
    /// `StateDict::read`: safetensors told apart from `.pth` by content.
    Weights,
    /// `StateDict::read_pth` on its own.
    Pth,
    /// `checkpoint::load` into a small compiled model.
    Checkpoint,
    /// `load_idx`: the bytes as the image file, raw or gzip.
    Idx,
    /// `load_cifar10`.
    Cifar,
    /// `ImageFolder::load` with one image of one class.
    Image,
    /// The conformance runner on one case file.
    Conformance,
}

impl Reader {
    /// Every reader, in a fixed order.
    pub const ALL: &'static [Reader] = &[
        Reader::Csv,
        Reader::Series,
        Reader::Weights,
        Reader::Pth,
        Reader::Checkpoint,
        Reader::Idx,
        Reader::Cifar,
        Reader::Image,
        Reader::Conformance,
    ];
}

/// Scratch space and the adapter the readers that need one share.
pub struct Harness {
    dir: PathBuf,
    device: Option<Device>,
}

impl Harness {
    /// A harness writing under `dir` (created). The adapter is opened the
    /// first time a reader needs one.
    pub fn new(dir: impl Into<PathBuf>) -> std::io::Result<Self> {
        let dir = dir.into();
        std::fs::create_dir_all(dir.join("images/class"))?;
        Ok(Self { dir, device: None })
    }

    fn device(&mut self) -> &Device {
        self.device
            .get_or_insert_with(|| Device::auto().expect("an adapter for the fuzz harness"))
    }

    fn file(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let path = self.dir.join(name);
        std::fs::write(&path, bytes).expect("the scratch folder is writable");
        path
    }

    /// Feeds `bytes` to `reader`; `Ok` when it loaded, the error's text when
    /// it refused. Panics only where the reader itself panics.
    pub fn run(&mut self, reader: Reader, bytes: &[u8]) -> Result<(), String> {
        let text = |e: &dyn std::fmt::Display| e.to_string();
        match reader {
            Reader::Csv => {
                let path = self.file("data.csv", bytes);
                let strict = CsvDataset::load(&path, "target").map(drop);
                let lenient = CsvDataset::load_with(&path, "target", NonFinite::DropRow).map(drop);
                strict.and(lenient).map_err(|e| text(&e))
            }
            Reader::Series => {
                let path = self.file("series.csv", bytes);
                let spec = SeriesSpec {
                    date_column: Some("date".into()),
                    features: vec!["a".into(), "b".into()],
                    target: "a".into(),
                    window: 3,
                    horizon: 1,
                    calendar: Calendar::DayOfYear,
                    train_fraction: 0.6,
                    val_fraction: 0.2,
                    gaps: crate::data::Gaps::Skip,
                };
                load_series(&path, &spec).map(drop).map_err(|e| text(&e))
            }
            Reader::Weights => {
                let path = self.file("weights.bin", bytes);
                StateDict::read(&path).map(drop).map_err(|e| text(&e))
            }
            Reader::Pth => {
                let path = self.file("weights.pth", bytes);
                StateDict::read_pth(&path).map(drop).map_err(|e| text(&e))
            }
            Reader::Checkpoint => {
                let path = self.file("checkpoint.safetensors", bytes);
                let mut model = small_model(self.device()).map_err(|e| text(&e))?;
                checkpoint::load(&mut model, &path)
                    .map(drop)
                    .map_err(|e| text(&e))
            }
            Reader::Idx => {
                let images = self.file("images-idx3-ubyte", bytes);
                let labels = self.file("labels-idx1-ubyte", &idx_labels(2));
                load_idx(&images, &labels).map(drop).map_err(|e| text(&e))
            }
            Reader::Cifar => {
                let path = self.file("data_batch_1.bin", bytes);
                load_cifar10(&[path]).map(drop).map_err(|e| text(&e))
            }
            Reader::Image => {
                self.file("images/class/picture.png", bytes);
                ImageFolder::load(self.dir.join("images"), [8, 8], 3)
                    .map(drop)
                    .map_err(|e| text(&e))
            }
            Reader::Conformance => {
                let dir = self.dir.join("cases");
                std::fs::create_dir_all(&dir).expect("the scratch folder is writable");
                std::fs::write(dir.join("case.safetensors"), bytes)
                    .expect("the scratch folder is writable");
                let device = self.device().clone();
                let report = crate::conform::run_dir(&device, &dir).map_err(|e| text(&e))?;
                match report.failed.first() {
                    Some((_, why)) => Err(why.clone()),
                    None => Ok(()),
                }
            }
        }
    }

    /// Valid inputs of `reader` for a fuzzer to start from, built from the
    /// repository's fixtures under `root` and from kiln's own writers.
    pub fn seeds(&mut self, reader: Reader, root: &Path) -> Vec<Vec<u8>> {
        let read = |p: &str| std::fs::read(root.join(p)).unwrap_or_default();
        let head = |p: &str, lines: usize| -> Vec<u8> {
            let text = String::from_utf8_lossy(&read(p)).into_owned();
            let kept: Vec<&str> = text.lines().take(lines).collect();
            (kept.join("\n") + "\n").into_bytes()
        };
        match reader {
            Reader::Csv => vec![head("data/breast_cancer.csv", 6), b"a,b,target\n1,2,0\n3,4,1\n".to_vec()],
            Reader::Series => vec![b"date,a,b\n2020-01-01,1,2\n2020-01-02,2,3\n2020-01-03,3,4\n2020-01-04,4,5\n2020-01-05,5,6\n2020-01-06,6,7\n2020-01-07,7,8\n2020-01-08,8,9\n2020-01-09,9,10\n2020-01-10,10,11\n2020-01-11,11,12\n2020-01-12,12,13\n".to_vec()],
            Reader::Weights => vec![
                read("tests/fixtures/tiny_state_dict.safetensors"),
                read("tests/fixtures/tiny_state_dict.pth"),
            ],
            Reader::Pth => vec![read("tests/fixtures/tiny_state_dict.pth")],
            Reader::Checkpoint => {
                let path = self.dir.join("seed-checkpoint.safetensors");
                let device = self.device().clone();
                let saved = small_model(&device)
                    .and_then(|m| checkpoint::save(&m, &path, 1))
                    .is_ok();
                if saved {
                    vec![std::fs::read(&path).unwrap_or_default()]
                } else {
                    Vec::new()
                }
            }
            Reader::Idx => {
                let mut raw = vec![0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 2];
                raw.extend([0u8, 64, 128, 255, 1, 2, 3, 4]);
                vec![raw]
            }
            Reader::Cifar => {
                let mut record = vec![3u8];
                record.extend((0..3072).map(|i| (i % 251) as u8));
                vec![record]
            }
            Reader::Image => vec![tiny_png()],
            Reader::Conformance => vec![
                read("tests/conformance/torch/torch_relu_7x5.safetensors"),
                read("tests/conformance/onnx/test_adam_multiple.safetensors"),
            ],
        }
    }
}

/// A 3 → 4 → 1 model compiled with Adam, as a checkpoint's target.
fn small_model(device: &Device) -> crate::models::Result<Sequential> {
    let mut m = Sequential::new(device, [3])
        .seed(1)
        .dense(4, Activation::Relu)
        .dense(1, Activation::Sigmoid);
    m.compile(
        Optimizer::adam(1e-3),
        crate::models::Loss::BinaryCrossEntropy,
        &[],
    )?;
    Ok(m)
}

/// An IDX label file of `n` zero labels.
fn idx_labels(n: u8) -> Vec<u8> {
    let mut v = vec![0, 0, 8, 1, 0, 0, 0, n];
    v.extend(std::iter::repeat_n(0u8, n as usize));
    v
}

/// A 2×2 RGB PNG.
fn tiny_png() -> Vec<u8> {
    let pixels = [255u8, 0, 0, 0, 255, 0, 0, 0, 255, 255, 255, 255];
    let mut png = Vec::new();
    let encoder = image::codecs::png::PngEncoder::new(&mut png);
    image::ImageEncoder::write_image(encoder, &pixels, 2, 2, image::ExtendedColorType::Rgb8)
        .map(|()| png)
        .unwrap_or_default()
}

/// One random edit of `bytes`, of the kinds that break readers: a flipped
/// bit, a boundary byte, a huge length or count, a non-finite number in
/// text, a cut, a repeated or deleted run. The smoke run's mutator
/// (cargo-fuzz brings its own).
pub fn mutate(bytes: &mut Vec<u8>, rng: &mut crate::data::SplitMix64) {
    const TOKENS: [&[u8]; 8] = [
        b"NaN",
        b"1e39",
        b"-inf",
        b"99999999999999999999",
        b"-1",
        b"\"",
        b",",
        b"\n",
    ];
    let len = bytes.len();
    let at = |rng: &mut crate::data::SplitMix64| rng.below(len.max(1));
    match rng.below(8) {
        0 if len > 0 => {
            let i = at(rng);
            bytes[i] ^= 1 << rng.below(8);
        }
        1 if len > 0 => {
            let i = at(rng);
            bytes[i] = [0u8, 0xff, 0x7f, 0x80, b'0', b'9'][rng.below(6)];
        }
        2 if len >= 8 => {
            // A length, count or offset field made enormous.
            let i = rng.below(len - 7);
            let huge: [u64; 4] = [u64::MAX, 1 << 40, 1_000_000_000_000, u32::MAX as u64];
            let v = huge[rng.below(4)];
            let word = if rng.below(2) == 0 {
                v.to_le_bytes()
            } else {
                v.to_be_bytes()
            };
            let width = [4, 8][rng.below(2)];
            bytes[i..i + width].copy_from_slice(&word[..width]);
        }
        3 => {
            let i = at(rng).min(len);
            let token = TOKENS[rng.below(TOKENS.len())];
            bytes.splice(i..i, token.iter().copied());
        }
        4 if len > 0 => bytes.truncate(at(rng)),
        5 if len > 1 => {
            let (a, b) = (at(rng), at(rng));
            let (a, b) = (a.min(b), a.max(b));
            bytes.drain(a..b);
        }
        6 if len > 1 && len < 1 << 20 => {
            let (a, b) = (at(rng), at(rng));
            let run: Vec<u8> = bytes[a.min(b)..a.max(b)].to_vec();
            let i = at(rng);
            bytes.splice(i..i, run);
        }
        _ => bytes.push(rng.below(256) as u8),
    }
}
