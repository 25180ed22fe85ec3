//! kiln-data: datasets and loaders (CSV tables; IDX, CIFAR-10 and image
//! folders; augmentation; batches prepared on a background thread). It
//! needs no GPU and none of the other kiln crates.
//!
//! ```no_run
//! use kiln_data::{CsvDataset, Standardizer};
//! let data = CsvDataset::load("data/breast_cancer.csv", "target")?;
//! let (mut train, mut test) = data.split(0.8, 42)?;
//! let scaler = Standardizer::fit(&train);
//! scaler.transform(&mut train)?;
//! scaler.transform(&mut test)?;
//! # Ok::<(), kiln_data::DataError>(())
//! ```

mod array;
mod batches;
mod cifar;
mod csv_loader;
mod dataset;
mod error;
mod gaps;
mod idx;
mod image_dir;
mod image_folder;
mod images;
mod prefetch;
mod rng;
mod standardize;
mod timeseries;

pub use array::Array;
pub use batches::batch_order;
pub use cifar::{load_cifar10, CIFAR10_TEST, CIFAR10_TRAIN};
pub use csv_loader::{CsvDataset, CsvLoad, NonFinite};
pub use dataset::Dataset;
pub use error::{DataError, Result};
pub use gaps::{GapReport, Gaps};
pub use idx::{load_idx, read_idx, read_idx_limited, Idx, MAX_INFLATED_BYTES};
pub use image_dir::{load_image_dir, FolderOptions, ImageLayout, ImageSplits};
pub use image_folder::ImageFolder;
pub use images::{pad_images, repeat_channels, resize_images, Augment, ChannelNorm};
pub use prefetch::{Batch, Prefetch};
pub use rng::SplitMix64;
pub use standardize::Standardizer;
pub use timeseries::{load_series, Calendar, SeriesPart, SeriesSpec, SeriesSplits};
