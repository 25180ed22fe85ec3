//! torchvision's `ImageFolder`: one sub-folder per class (classes in name
//! order are labels 0, 1, …), images decoded with the `image` crate and
//! resized to one size. Decoding runs on every core at once. The images
//! come shuffled under a seed, as Keras' `image_dataset_from_directory`
//! gives them: in class order, a validation split taken from the end would
//! hold the last class alone.

use std::path::{Path, PathBuf};

use image::imageops::FilterType;

use crate::dataset::Dataset;
use crate::error::{format_error, io_error, DataError, Result};
use crate::rng::SplitMix64;

/// The file extensions read as images.
const EXTENSIONS: [&str; 6] = ["png", "jpg", "jpeg", "bmp", "gif", "pgm"];

/// Images of one folder tree, with the class names their labels index.
#[derive(Clone, Debug)]
pub struct ImageFolder {
    pub data: Dataset,
    pub classes: Vec<String>,
}

impl ImageFolder {
    /// Decodes every image under `root/<class>/`, resized to `size`
    /// (height, width) with a triangle filter, as `channels` (1: grey, 3:
    /// RGB) planes of values in [0, 1], shuffled under seed
    /// [`ImageFolder::SEED`].
    ///
    /// ```no_run
    /// let f = kiln_data::ImageFolder::load("photos/train", [64, 64], 3)?;
    /// println!("{} images of {:?}", f.data.len(), f.classes);
    /// # Ok::<(), kiln_data::DataError>(())
    /// ```
    pub fn load(root: impl AsRef<Path>, size: [usize; 2], channels: usize) -> Result<Self> {
        Self::load_with(root, size, channels, Some(Self::SEED))
    }

    /// The shuffle seed of [`ImageFolder::load`].
    pub const SEED: u64 = 0;

    /// [`ImageFolder::load`] with the images shuffled under `shuffle`, or
    /// in file order (class by class, names sorted) for `None`.
    pub fn load_with(
        root: impl AsRef<Path>,
        size: [usize; 2],
        channels: usize,
        shuffle: Option<u64>,
    ) -> Result<Self> {
        let root = root.as_ref();
        if channels != 1 && channels != 3 {
            return Err(DataError::Settings(format!(
                "ImageFolder reads 1 (grey) or 3 (RGB) channels, not {channels}"
            )));
        }
        if size.contains(&0) {
            return Err(DataError::Settings(format!(
                "ImageFolder cannot resize to {size:?}"
            )));
        }
        let classes = class_dirs(root)?;
        if classes.is_empty() {
            return Err(format_error(
                root,
                "no class sub-folders: ImageFolder expects root/<class>/<image> files",
            ));
        }
        let mut files: Vec<(PathBuf, usize)> = Vec::new();
        for (label, class) in classes.iter().enumerate() {
            let dir = root.join(class);
            let mut found = Vec::new();
            for entry in std::fs::read_dir(&dir).map_err(|e| io_error(&dir, e))? {
                let path = entry.map_err(|e| io_error(&dir, e))?.path();
                let ext = path
                    .extension()
                    .and_then(|e| e.to_str())
                    .map(str::to_ascii_lowercase);
                if path.is_file() && ext.is_some_and(|e| EXTENSIONS.contains(&e.as_str())) {
                    found.push(path);
                }
            }
            found.sort();
            files.extend(found.into_iter().map(|p| (p, label)));
        }
        if files.is_empty() {
            return Err(format_error(
                root,
                format!("no images ({}) in any class folder", EXTENSIONS.join(", ")),
            ));
        }
        if let Some(seed) = shuffle {
            SplitMix64::new(seed).shuffle(&mut files);
        }
        let per_image = channels * size[0] * size[1];
        let mut pixels = vec![0.0f32; files.len() * per_image];
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let chunk = files.len().div_ceil(threads);
        std::thread::scope(|scope| -> Result<()> {
            let workers: Vec<_> = files
                .chunks(chunk)
                .zip(pixels.chunks_mut(chunk * per_image))
                .map(|(files, out)| {
                    scope.spawn(move || -> Result<()> {
                        for ((path, _), out) in files.iter().zip(out.chunks_mut(per_image)) {
                            decode_into(path, size, channels, out)?;
                        }
                        Ok(())
                    })
                })
                .collect();
            for w in workers {
                w.join().map_err(|_| {
                    DataError::Internal("an image decoder thread panicked".into())
                })??;
            }
            Ok(())
        })?;
        let labels = files.iter().map(|(_, l)| *l as f32).collect();
        let data = Dataset::with_shapes(pixels, &[channels, size[0], size[1]], labels, &[])?;
        Ok(Self { data, classes })
    }
}

/// The class sub-folders of `root`, sorted by name.
fn class_dirs(root: &Path) -> Result<Vec<String>> {
    let mut classes = Vec::new();
    for entry in std::fs::read_dir(root).map_err(|e| io_error(root, e))? {
        let entry = entry.map_err(|e| io_error(root, e))?;
        if entry.path().is_dir() {
            classes.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    classes.sort();
    Ok(classes)
}

/// Decodes one image into `out` as `channels` planes of `size`, CHW.
fn decode_into(path: &Path, size: [usize; 2], channels: usize, out: &mut [f32]) -> Result<()> {
    let img = image::ImageReader::open(path)
        .map_err(|e| io_error(path, e))?
        .with_guessed_format()
        .map_err(|e| io_error(path, e))?
        .decode()
        .map_err(|e| format_error(path, format!("cannot decode the image: {e}")))?;
    let (w, h) = (size[1] as u32, size[0] as u32);
    let plane = size[0] * size[1];
    if channels == 1 {
        let grey = image::imageops::resize(&img.to_luma8(), w, h, FilterType::Triangle);
        for (o, p) in out.iter_mut().zip(grey.as_raw()) {
            *o = *p as f32 / 255.0;
        }
    } else {
        let rgb = image::imageops::resize(&img.to_rgb8(), w, h, FilterType::Triangle);
        for (i, px) in rgb.as_raw().chunks_exact(3).enumerate() {
            for c in 0..3 {
                out[c * plane + i] = px[c] as f32 / 255.0;
            }
        }
    }
    Ok(())
}
