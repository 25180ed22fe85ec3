//! Checking, before any work, that a file can be written where the user
//! asked: a typo in a folder name should cost a second, not a training run.

use std::path::Path;

use crate::error::{ModelError, Result};

/// Errors unless `path` names a file that can be created or overwritten:
/// its folder exists and is writable and the path is not a folder. A file
/// created to prove it is removed again; an existing file is left as it is.
///
/// ```
/// let dir = std::env::temp_dir();
/// kiln_models::check_writable(dir.join("history.csv"))?;
/// assert!(kiln_models::check_writable(dir.join("no-such-folder/history.csv")).is_err());
/// # Ok::<(), kiln_models::ModelError>(())
/// ```
pub fn check_writable(path: impl AsRef<Path>) -> Result<()> {
    let path = path.as_ref();
    let fail = |why: String| ModelError::Output {
        path: path.display().to_string(),
        detail: format!("cannot write it: {why}"),
    };
    if path.as_os_str().is_empty() {
        return Err(fail("the path is empty".into()));
    }
    if path.is_dir() {
        return Err(fail("it is a folder; expected a file name".into()));
    }
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if !parent.is_dir() {
        return Err(fail(format!(
            "the folder {} does not exist",
            parent.display()
        )));
    }
    let existed = path.exists();
    std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)
        .map_err(|e| fail(e.to_string()))?;
    if !existed {
        std::fs::remove_file(path).map_err(|e| fail(e.to_string()))?;
    }
    Ok(())
}
