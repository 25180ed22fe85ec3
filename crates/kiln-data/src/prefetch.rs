//! Batches gathered (and augmented) on a background thread, a few ahead of
//! the training loop, so the GPU never waits for the CPU to copy rows.

use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Arc;
use std::thread::JoinHandle;

use crate::dataset::Dataset;
use crate::error::Result;
use crate::images::Augment;
use crate::rng::SplitMix64;

/// One batch: its features and targets, row-major.
#[derive(Clone, Debug, PartialEq)]
pub struct Batch {
    pub x: Vec<f32>,
    pub y: Vec<f32>,
    pub rows: usize,
}

/// An iterator over the batches `order` lists (row indices of `data`),
/// prepared by a worker thread at most `ahead` batches in advance. With an
/// [`Augment`], batch `k` is augmented from a generator seeded by `seed`
/// and `k`, so a seed gives the same data whatever the thread timing.
///
/// ```
/// use std::sync::Arc;
/// use kiln_data::{batch_order, Dataset, Prefetch};
/// let data = Arc::new(Dataset::new(vec![0.0; 10], vec![1.0; 10], 1, 1)?);
/// let batches: Vec<_> = Prefetch::new(data, batch_order(10, 4, None, 0), None, 0, 2)
///     .collect::<Result<_, _>>()?;
/// assert_eq!(batches.iter().map(|b| b.rows).collect::<Vec<_>>(), vec![4, 4, 2]);
/// # Ok::<(), kiln_data::DataError>(())
/// ```
pub struct Prefetch {
    batches: Option<Receiver<Result<Batch>>>,
    worker: Option<JoinHandle<()>>,
}

impl Prefetch {
    pub fn new(
        data: Arc<Dataset>,
        order: Vec<Vec<usize>>,
        augment: Option<Augment>,
        seed: u64,
        ahead: usize,
    ) -> Self {
        let (tx, rx) = sync_channel(ahead.max(1));
        let worker = std::thread::spawn(move || {
            for (k, rows) in order.iter().enumerate() {
                let batch = data.gather(rows).and_then(|(mut x, y)| {
                    if let Some(a) = augment {
                        let mut rng =
                            SplitMix64::new(seed ^ (k as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15));
                        a.apply(&mut x, data.sample_shape(), &mut rng)?;
                    }
                    Ok(Batch {
                        x,
                        y,
                        rows: rows.len(),
                    })
                });
                let failed = batch.is_err();
                // The receiver hung up (the loop stopped early): stop too.
                if tx.send(batch).is_err() || failed {
                    return;
                }
            }
        });
        Self {
            batches: Some(rx),
            worker: Some(worker),
        }
    }
}

impl Iterator for Prefetch {
    type Item = Result<Batch>;

    fn next(&mut self) -> Option<Self::Item> {
        self.batches.as_ref()?.recv().ok()
    }
}

impl Drop for Prefetch {
    fn drop(&mut self) {
        // Hang up first so a worker blocked on a full channel wakes and ends.
        self.batches.take();
        if let Some(w) = self.worker.take() {
            let _ = w.join();
        }
    }
}
