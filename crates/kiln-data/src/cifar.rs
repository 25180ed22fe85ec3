//! CIFAR-10's binary version: files of 3073-byte records, a label byte
//! then 3×32×32 pixel bytes (red plane, green, blue).

use std::path::Path;

use crate::dataset::Dataset;
use crate::error::{format_error, io_error, DataError, Result};

const SIDE: usize = 32;
const PIXELS: usize = 3 * SIDE * SIDE;
const RECORD: usize = 1 + PIXELS;
const CLASSES: u8 = 10;

/// The training files of a CIFAR-10 binary folder, in order.
pub const CIFAR10_TRAIN: [&str; 5] = [
    "data_batch_1.bin",
    "data_batch_2.bin",
    "data_batch_3.bin",
    "data_batch_4.bin",
    "data_batch_5.bin",
];

/// Its test file.
pub const CIFAR10_TEST: &str = "test_batch.bin";

/// The records of CIFAR-10 binary `files`, concatenated: pixels scaled to
/// [0, 1], samples of shape `[3, 32, 32]`, targets class indices.
pub fn load_cifar10<P: AsRef<Path>>(files: &[P]) -> Result<Dataset> {
    if files.is_empty() {
        return Err(DataError::Settings(
            "load_cifar10 needs at least one file".into(),
        ));
    }
    let mut pixels = Vec::new();
    let mut labels = Vec::new();
    for path in files {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|e| io_error(path, e))?;
        if bytes.is_empty() || !bytes.len().is_multiple_of(RECORD) {
            return Err(format_error(
                path,
                format!(
                    "{} bytes is not a whole number of {RECORD}-byte CIFAR-10 records (truncated?)",
                    bytes.len()
                ),
            ));
        }
        for (k, record) in bytes.chunks_exact(RECORD).enumerate() {
            if record[0] >= CLASSES {
                return Err(format_error(
                    path,
                    format!(
                        "record {k} has label {}; CIFAR-10 labels are 0–9",
                        record[0]
                    ),
                ));
            }
            labels.push(record[0] as f32);
            pixels.extend(record[1..].iter().map(|&p| p as f32 / 255.0));
        }
    }
    Dataset::with_shapes(pixels, &[3, SIDE, SIDE], labels, &[])
}
