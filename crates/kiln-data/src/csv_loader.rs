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

/// Loader of numeric CSV files.
pub struct CsvDataset;

impl CsvDataset {
    /// Reads `path`; the column named `target` becomes the (single) target,
    /// every other column a feature, in file order.
    pub fn load(path: impl AsRef<Path>, target: &str) -> Result<Dataset> {
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
        for (row, record) in reader.records().enumerate() {
            let record = record.map_err(|e| err(e.to_string()))?;
            if record.len() != header.len() {
                return Err(err(format!(
                    "line {}: {} fields, the header has {}",
                    row + 2,
                    record.len(),
                    header.len()
                )));
            }
            for (i, field) in record.iter().enumerate() {
                let value: f32 = field.trim().parse().map_err(|_| {
                    err(format!(
                        "line {}, column {:?}: {field:?} is not a number",
                        row + 2,
                        header[i]
                    ))
                })?;
                if i == target_at {
                    targets.push(value);
                } else {
                    features.push(value);
                }
            }
        }
        if targets.is_empty() {
            return Err(err("no data rows after the header".into()));
        }
        Dataset::new(features, targets, names.len(), 1)?.with_feature_names(names)
    }
}
