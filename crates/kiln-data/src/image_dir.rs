//! A folder of images in any of the layouts kiln reads, told apart by what
//! it holds: the four IDX files of MNIST / Fashion-MNIST, CIFAR-10's binary
//! batches, or an ImageFolder tree.

use std::path::{Path, PathBuf};

use crate::cifar::{load_cifar10, CIFAR10_TEST, CIFAR10_TRAIN};
use crate::dataset::Dataset;
use crate::error::{format_error, Result};
use crate::idx::load_idx;
use crate::image_folder::ImageFolder;

/// Which layout a folder had.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ImageLayout {
    /// `train-images-idx3-ubyte[.gz]` and its three companions.
    Idx,
    /// `data_batch_1.bin` … `data_batch_5.bin` and `test_batch.bin`.
    Cifar10,
    /// `<class>/<image>` folders, split into `train/` and `test/` (or
    /// `val/`), or held out from one tree.
    ImageFolder { classes: Vec<String> },
}

/// A folder's training and test images.
#[derive(Clone, Debug)]
pub struct ImageSplits {
    pub train: Dataset,
    pub test: Dataset,
    pub layout: ImageLayout,
}

/// How an ImageFolder tree is read: images are resized to `size` with
/// `channels` channels; a tree without `train/` and `test/` sub-folders
/// keeps `test_fraction` of its images (chosen under `seed`) for testing.
#[derive(Clone, Copy, Debug)]
pub struct FolderOptions {
    pub size: [usize; 2],
    pub channels: usize,
    pub test_fraction: f64,
    pub seed: u64,
}

/// The file of an IDX set under its usual name, gzip or raw.
fn idx_file(dir: &Path, stem: &str) -> Option<PathBuf> {
    [format!("{stem}.gz"), stem.to_string()]
        .into_iter()
        .map(|n| dir.join(n))
        .find(|p| p.is_file())
}

/// Loads `dir`, detecting its layout (see [`ImageLayout`]).
///
/// ```no_run
/// use kiln_data::{load_image_dir, FolderOptions};
/// let opts = FolderOptions { size: [32, 32], channels: 3, test_fraction: 0.2, seed: 0 };
/// let sets = load_image_dir("data/fashion-mnist", &opts)?;
/// println!("{:?}: {} training images", sets.layout, sets.train.len());
/// # Ok::<(), kiln_data::DataError>(())
/// ```
pub fn load_image_dir(dir: impl AsRef<Path>, folder: &FolderOptions) -> Result<ImageSplits> {
    let dir = dir.as_ref();
    if !dir.is_dir() {
        return Err(format_error(dir, "not a folder"));
    }
    let idx: Vec<Option<PathBuf>> = [
        "train-images-idx3-ubyte",
        "train-labels-idx1-ubyte",
        "t10k-images-idx3-ubyte",
        "t10k-labels-idx1-ubyte",
    ]
    .iter()
    .map(|s| idx_file(dir, s))
    .collect();
    if idx[0].is_some() {
        let file = |k: usize| {
            idx[k].clone().ok_or_else(|| {
                format_error(
                    dir,
                    "has train-images-idx3-ubyte but not all of the four IDX files (train/t10k images and labels)",
                )
            })
        };
        return Ok(ImageSplits {
            train: load_idx(file(0)?, file(1)?)?,
            test: load_idx(file(2)?, file(3)?)?,
            layout: ImageLayout::Idx,
        });
    }
    if dir.join(CIFAR10_TRAIN[0]).is_file() {
        let train: Vec<PathBuf> = CIFAR10_TRAIN
            .iter()
            .map(|f| dir.join(f))
            .filter(|p| p.is_file())
            .collect();
        return Ok(ImageSplits {
            train: load_cifar10(&train)?,
            test: load_cifar10(&[dir.join(CIFAR10_TEST)])?,
            layout: ImageLayout::Cifar10,
        });
    }
    let test_dir = ["test", "val"]
        .iter()
        .map(|d| dir.join(d))
        .find(|p| p.is_dir());
    let (train, test, classes) = match (dir.join("train").is_dir(), test_dir) {
        (true, Some(test_dir)) => {
            let load = |d: &Path| {
                ImageFolder::load_with(d, folder.size, folder.channels, Some(folder.seed))
            };
            let train = load(&dir.join("train"))?;
            let test = load(&test_dir)?;
            if test.classes != train.classes {
                return Err(format_error(
                    &test_dir,
                    format!(
                        "its classes {:?} differ from train/'s {:?}",
                        test.classes, train.classes
                    ),
                ));
            }
            (train.data, test.data, train.classes)
        }
        _ => {
            let all = ImageFolder::load_with(dir, folder.size, folder.channels, Some(folder.seed))?;
            let (train, test) = all.data.split(1.0 - folder.test_fraction, folder.seed)?;
            (train, test, all.classes)
        }
    };
    Ok(ImageSplits {
        train,
        test,
        layout: ImageLayout::ImageFolder { classes },
    })
}
