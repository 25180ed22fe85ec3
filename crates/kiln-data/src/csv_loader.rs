//! CSV files with a header: every column but the target is a numeric feature.

use std::path::Path;

use crate::dataset::Dataset;
use crate::error::{DataError, Result};

/// Opens a CSV file with a header: its reader and its trimmed column names.
pub(crate) fn open_csv(path: &Path) -> Result<(csv::Reader<std::fs::File>, Vec<String>)> {
    let shown = path.display().to_string();
    let mut reader = csv::Reader::from_path(path).map_err(|e| match e.kind() {
        csv::ErrorKind::Io(_) => DataError::Io {
            path: shown.clone(),
            source: std::io::Error::other(e.to_string()),
        },
        _ => DataError::Csv {
            path: shown.clone(),
            detail: e.to_string(),
        },
    })?;
    let header = reader
        .headers()
        .map_err(|e| DataError::Csv {
            path: shown.clone(),
            detail: e.to_string(),
        })?
        .iter()
        .map(|h| h.trim().to_string())
        .collect();
    Ok((reader, header))
}

/// What to do with a cell holding `NaN`, `inf` or a number beyond f32's
/// range (`1e39`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum NonFinite {
    /// An error naming the file, line and column (the default): a model
    /// trained on such a value reports silently wrong numbers.
    #[default]
    Reject,
    /// Rows holding one are left out; [`CsvDataset::load_with`] reports
    /// how many through [`CsvLoad::dropped_rows`].
    DropRow,
}

/// A loaded CSV file and what loading it left out.
#[derive(Debug)]
pub struct CsvLoad {
    pub data: Dataset,
    /// Data lines (1-based, the header is line 1) dropped for a
    /// non-finite value under [`NonFinite::DropRow`].
    pub dropped_rows: Vec<usize>,
}

/// Loader of numeric CSV files.
pub struct CsvDataset;

impl CsvDataset {
    /// Reads `path`; the column named `target` becomes the (single) target,
    /// every other column a feature, in file order. A non-finite value is
    /// an error naming its line and column.
    ///
    /// ```no_run
    /// let data = kiln_data::CsvDataset::load("data/breast_cancer.csv", "target")?;
    /// # Ok::<(), kiln_data::DataError>(())
    /// ```
    pub fn load(path: impl AsRef<Path>, target: &str) -> Result<Dataset> {
        Ok(Self::load_with(path, target, NonFinite::Reject)?.data)
    }

    /// [`CsvDataset::load`] with a choice of what to do with non-finite
    /// values.
    pub fn load_with(
        path: impl AsRef<Path>,
        target: &str,
        non_finite: NonFinite,
    ) -> Result<CsvLoad> {
        let path = path.as_ref();
        let shown = path.display().to_string();
        let err = |detail: String| DataError::Csv {
            path: shown.clone(),
            detail,
        };
        let (mut reader, header) = open_csv(path)?;
        let Some(target_at) = header.iter().position(|h| h == target) else {
            return Err(err(format!(
                "no column named {target:?}; the header has {header:?}"
            )));
        };
        let names: Vec<String> = header
            .iter()
            .enumerate()
            .filter(|&(i, _)| i != target_at)
            .map(|(_, h)| h.clone())
            .collect();
        let (mut features, mut targets) = (Vec::new(), Vec::new());
        let mut dropped_rows = Vec::new();
        let mut row_values = Vec::with_capacity(header.len());
        'rows: for (row, record) in reader.records().enumerate() {
            let record = record.map_err(|e| err(e.to_string()))?;
            if record.len() != header.len() {
                return Err(err(format!(
                    "line {}: {} fields, the header has {}",
                    row + 2,
                    record.len(),
                    header.len()
                )));
            }
            row_values.clear();
            for (i, field) in record.iter().enumerate() {
                let value: f32 = field.trim().parse().map_err(|_| {
                    err(format!(
                        "line {}, column {:?}: {field:?} is not a number",
                        row + 2,
                        header[i]
                    ))
                })?;
                if !value.is_finite() {
                    match non_finite {
                        NonFinite::Reject => {
                            return Err(err(format!(
                                "line {}, column {:?}: {field:?} is not a finite f32 \
                                 (NaN, infinite, or beyond ±3.4e38); clean the file or \
                                 load it with NonFinite::DropRow",
                                row + 2,
                                header[i]
                            )))
                        }
                        NonFinite::DropRow => {
                            dropped_rows.push(row + 2);
                            continue 'rows;
                        }
                    }
                }
                row_values.push(value);
            }
            for (i, &value) in row_values.iter().enumerate() {
                if i == target_at {
                    targets.push(value);
                } else {
                    features.push(value);
                }
            }
        }
        if targets.is_empty() {
            let detail = if dropped_rows.is_empty() {
                "no data rows after the header".to_string()
            } else {
                format!(
                    "every one of the {} data rows holds a non-finite value",
                    dropped_rows.len()
                )
            };
            return Err(err(detail));
        }
        let data = Dataset::new(features, targets, names.len(), 1)?.with_feature_names(names)?;
        Ok(CsvLoad { data, dropped_rows })
    }
}
