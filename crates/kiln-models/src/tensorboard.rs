//! TensorBoard logs: event files of scalars that TensorBoard reads, written
//! by hand because no maintained Rust crate writes them. The format is
//! TFRecord (a length, its masked CRC-32C, the data, its masked CRC-32C)
//! around `tensorflow.Event` protocol buffers; the three messages used are
//! encoded here field by field:
//!
//! - `Event { double wall_time = 1; int64 step = 2; string file_version = 3;
//!   Summary summary = 5; }`
//! - `Summary { repeated Value value = 1; }`
//! - `Summary.Value { string tag = 1; float simple_value = 2; }`

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::callbacks::{BatchLogs, Callback, Control};
use crate::error::{ModelError, Result};
use crate::history::{EpochLogs, History};
use crate::trainable::Trainable;

/// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), by table.
const CRC32C: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                (c >> 1) ^ 0x82F6_3B78
            } else {
                c >> 1
            };
            k += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
};

fn crc32c(bytes: &[u8]) -> u32 {
    !bytes.iter().fold(!0u32, |c, &b| {
        CRC32C[((c ^ b as u32) & 0xff) as usize] ^ (c >> 8)
    })
}

/// TFRecord's masked CRC, so that a CRC of data holding CRCs stays sound.
fn masked_crc(bytes: &[u8]) -> u32 {
    let c = crc32c(bytes);
    c.rotate_right(15).wrapping_add(0xa282_ead8)
}

fn varint(mut v: u64, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// A length-delimited field: its key, length and bytes.
fn bytes_field(field: u32, bytes: &[u8], out: &mut Vec<u8>) {
    varint(((field << 3) | 2) as u64, out);
    varint(bytes.len() as u64, out);
    out.extend_from_slice(bytes);
}

/// An `Event` with its wall time and step, and `what` (file version or
/// summary) already encoded as its field.
fn event(wall_time: f64, step: i64, what: &[u8]) -> Vec<u8> {
    let mut e = vec![0x09];
    e.extend_from_slice(&wall_time.to_le_bytes());
    if step != 0 {
        e.push(0x10);
        varint(step as u64, &mut e);
    }
    e.extend_from_slice(what);
    e
}

/// An event file being written.
///
/// ```no_run
/// let mut w = kiln_models::EventWriter::create("runs/mlp/events.out.tfevents.0.kiln", 0.0)?;
/// w.scalar("loss", 1, 0.42, 1.0)?;
/// # Ok::<(), kiln_models::ModelError>(())
/// ```
pub struct EventWriter {
    path: PathBuf,
    file: std::fs::File,
}

impl EventWriter {
    /// Creates `path` and writes the file-version event TensorBoard looks
    /// for first, stamped `wall_time` (seconds since the Unix epoch).
    pub fn create(path: impl AsRef<Path>, wall_time: f64) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let file = std::fs::File::create(&path).map_err(|e| io(&path, e))?;
        let mut w = Self { path, file };
        let mut version = Vec::new();
        bytes_field(3, b"brain.Event:2", &mut version);
        w.record(&event(wall_time, 0, &version))?;
        Ok(w)
    }

    /// Appends a scalar `value` under `tag` at `step`, stamped `wall_time`.
    pub fn scalar(&mut self, tag: &str, step: i64, value: f32, wall_time: f64) -> Result<()> {
        let mut v = Vec::new();
        bytes_field(1, tag.as_bytes(), &mut v);
        v.push(0x15);
        v.extend_from_slice(&value.to_le_bytes());
        let mut summary_value = Vec::new();
        bytes_field(1, &v, &mut summary_value);
        let mut what = Vec::new();
        bytes_field(5, &summary_value, &mut what);
        self.record(&event(wall_time, step, &what))
    }

    /// One TFRecord, flushed so that TensorBoard sees it during training.
    fn record(&mut self, data: &[u8]) -> Result<()> {
        let len = (data.len() as u64).to_le_bytes();
        let mut r = Vec::with_capacity(data.len() + 16);
        r.extend_from_slice(&len);
        r.extend_from_slice(&masked_crc(&len).to_le_bytes());
        r.extend_from_slice(data);
        r.extend_from_slice(&masked_crc(data).to_le_bytes());
        self.file
            .write_all(&r)
            .and_then(|()| self.file.flush())
            .map_err(|e| io(&self.path, e))
    }
}

fn io(path: &Path, e: std::io::Error) -> ModelError {
    ModelError::Output {
        path: path.display().to_string(),
        detail: format!("writing TensorBoard events: {e}"),
    }
}

fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Keras' `TensorBoard(log_dir)`: every epoch's logged values (`loss`,
/// `val_loss`, metrics) as scalars at step = epoch, in an event file under
/// `dir`; with [`TensorBoard::per_batch`], also each batch's running loss
/// as `batch_loss` at step = optimizer step. `tensorboard --logdir DIR`
/// shows them.
pub struct TensorBoard {
    dir: PathBuf,
    per_batch: bool,
    writer: Option<EventWriter>,
}

impl TensorBoard {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            per_batch: false,
            writer: None,
        }
    }

    /// Also logs each batch's running loss (it reads the loss back after
    /// every step).
    pub fn per_batch(mut self) -> Self {
        self.per_batch = true;
        self
    }

    fn writer(&mut self) -> Result<&mut EventWriter> {
        self.writer.as_mut().ok_or_else(|| {
            ModelError::Settings("TensorBoard: the event file is opened by on_train_begin".into())
        })
    }
}

impl Callback for TensorBoard {
    fn on_train_begin(&mut self) -> Result<()> {
        std::fs::create_dir_all(&self.dir).map_err(|e| io(&self.dir, e))?;
        let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "kiln".into());
        // TensorBoard reads files whose names contain "tfevents"; the
        // process id keeps two runs in one second apart.
        let name = format!(
            "events.out.tfevents.{}.{host}.{}",
            now() as u64,
            std::process::id()
        );
        self.writer = Some(EventWriter::create(self.dir.join(name), now())?);
        Ok(())
    }

    fn on_batch_end(&mut self, batch: &BatchLogs, _: &mut dyn Trainable) -> Result<Control> {
        if let (true, Some(loss)) = (self.per_batch, batch.loss) {
            self.writer()?
                .scalar("batch_loss", batch.step as i64 + 1, loss, now())?;
        }
        Ok(Control::Continue)
    }

    fn wants_batch_loss(&self) -> bool {
        self.per_batch
    }

    fn on_epoch_end(
        &mut self,
        logs: &EpochLogs,
        _: &mut dyn Trainable,
        _: &mut History,
    ) -> Result<Control> {
        let w = self.writer()?;
        let t = now();
        for (tag, value) in &logs.values {
            w.scalar(tag, logs.epoch as i64, *value, t)?;
        }
        Ok(Control::Continue)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The CRC-32C check value of the catalogue of parametrised CRCs.
    #[test]
    fn crc32c_matches_its_check_value() {
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
    }
}
