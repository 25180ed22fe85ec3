//! kiln-data: datasets and loaders. It needs no GPU and none of the other kiln
//! crates.
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
mod csv_loader;
mod dataset;
mod error;
mod rng;
mod standardize;

pub use array::Array;
pub use batches::batch_order;
pub use csv_loader::CsvDataset;
pub use dataset::Dataset;
pub use error::{DataError, Result};
pub use rng::SplitMix64;
pub use standardize::Standardizer;
