//! The IDX format of MNIST and Fashion-MNIST, raw or gzip-compressed: a
//! magic number (two zero bytes, the element type, the number of
//! dimensions), the dimensions as big-endian u32, then the elements.

use std::io::Read;
use std::path::Path;

use crate::dataset::Dataset;
use crate::error::{format_error, io_error, Result};

/// The element type byte of unsigned bytes, the only type the image and
/// label files use.
const UBYTE: u8 = 0x08;

/// An IDX file's dimensions and its bytes.
#[derive(Clone, Debug, PartialEq)]
pub struct Idx {
    pub dims: Vec<usize>,
    pub data: Vec<u8>,
}

/// The most bytes [`read_idx`] inflates from a gzip file: 1 GiB, twenty
/// times Fashion-MNIST's training images. [`read_idx_limited`] sets another.
pub const MAX_INFLATED_BYTES: u64 = 1 << 30;

/// Reads the bytes of `path`, inflating them when the file is gzip, to at
/// most `limit` bytes: a small file cannot ask for more (a gzip bomb).
fn read_maybe_gzip(path: &Path, limit: u64) -> Result<Vec<u8>> {
    let raw = std::fs::read(path).map_err(|e| io_error(path, e))?;
    if !raw.starts_with(&[0x1f, 0x8b]) {
        return Ok(raw);
    }
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(raw.as_slice())
        .take(limit.saturating_add(1))
        .read_to_end(&mut out)
        .map_err(|e| format_error(path, format!("gzip data is corrupt or truncated ({e})")))?;
    if out.len() as u64 > limit {
        return Err(format_error(
            path,
            format!(
                "gzip data inflates past the limit of {limit} bytes ({} compressed): a gzip \
                 bomb, or a file larger than the limit allows (`read_idx_limited` sets it)",
                raw.len()
            ),
        ));
    }
    Ok(out)
}

/// Reads an IDX file of unsigned bytes (`.gz` or raw, told apart by content).
///
/// ```no_run
/// let labels = kiln_data::read_idx("data/fashion-mnist/t10k-labels-idx1-ubyte.gz")?;
/// assert_eq!(labels.dims, vec![2000]);
/// # Ok::<(), kiln_data::DataError>(())
/// ```
pub fn read_idx(path: impl AsRef<Path>) -> Result<Idx> {
    read_idx_limited(path, MAX_INFLATED_BYTES)
}

/// [`read_idx`], inflating a gzip file to at most `max_inflated` bytes:
/// past that it is an error naming the file and the limit.
pub fn read_idx_limited(path: impl AsRef<Path>, max_inflated: u64) -> Result<Idx> {
    let path = path.as_ref();
    let bytes = read_maybe_gzip(path, max_inflated)?;
    if bytes.len() < 4 || bytes[0] != 0 || bytes[1] != 0 {
        return Err(format_error(
            path,
            "not an IDX file: it must start with two zero bytes, a type and a rank",
        ));
    }
    if bytes[2] != UBYTE {
        return Err(format_error(
            path,
            format!(
                "IDX element type 0x{:02x}; kiln reads unsigned bytes (0x08)",
                bytes[2]
            ),
        ));
    }
    let rank = bytes[3] as usize;
    let header = 4 + 4 * rank;
    if rank == 0 || bytes.len() < header {
        return Err(format_error(
            path,
            format!(
                "truncated IDX header: rank {rank} needs {header} bytes, the file has {}",
                bytes.len()
            ),
        ));
    }
    let dims: Vec<usize> = bytes[4..header]
        .chunks_exact(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as usize)
        .collect();
    let want = dims
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| format_error(path, format!("dimensions {dims:?} overflow")))?;
    let have = bytes.len() - header;
    if have != want {
        return Err(format_error(
            path,
            format!(
                "the header's dimensions {dims:?} promise {want} bytes of data; the file holds {have}{}",
                if have < want { " (truncated)" } else { "" }
            ),
        ));
    }
    Ok(Idx {
        dims,
        data: bytes[header..].to_vec(),
    })
}

/// Images and labels from a pair of IDX files: pixels scaled to [0, 1],
/// samples of shape `[1, H, W]`, targets class indices (shape `[]`).
pub fn load_idx(images: impl AsRef<Path>, labels: impl AsRef<Path>) -> Result<Dataset> {
    let (ip, lp) = (images.as_ref(), labels.as_ref());
    let img = read_idx(ip)?;
    let lab = read_idx(lp)?;
    if img.dims.len() != 3 {
        return Err(format_error(
            ip,
            format!(
                "images need dimensions [count, height, width]; got {:?}",
                img.dims
            ),
        ));
    }
    if lab.dims.len() != 1 {
        return Err(format_error(
            lp,
            format!("labels need dimensions [count]; got {:?}", lab.dims),
        ));
    }
    if lab.dims[0] != img.dims[0] {
        return Err(format_error(
            lp,
            format!(
                "{} labels for the {} images of {}",
                lab.dims[0],
                img.dims[0],
                ip.display()
            ),
        ));
    }
    let pixels: Vec<f32> = img.data.iter().map(|&p| p as f32 / 255.0).collect();
    let targets: Vec<f32> = lab.data.iter().map(|&l| l as f32).collect();
    Dataset::with_shapes(pixels, &[1, img.dims[1], img.dims[2]], targets, &[])
}
