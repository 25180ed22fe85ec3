//! The caching allocator: GPU buffers are rounded up to a size bucket and, when
//! the last handle to one drops, kept on that bucket's free list for the next
//! request instead of being destroyed. Counters track the bytes live in
//! tensors, their peak, and the bytes the pool holds in all.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Storage buffers are bound whole; 256 bytes keeps every size a multiple of
/// the strictest offset alignment and of a vec4.
const MIN_BUCKET: u64 = 256;

/// Rounds a request to the next of four sizes per power of two, so a reused
/// buffer wastes at most a quarter of itself.
fn bucket_size(bytes: u64) -> u64 {
    let bytes = bytes.max(MIN_BUCKET);
    let pow = bytes.next_power_of_two();
    if pow <= 1024 {
        return pow;
    }
    let quarter = pow / 8;
    bytes.div_ceil(quarter) * quarter
}

/// Bytes in use and held, as seen by the pool.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolCounters {
    /// Bytes of buffers handed out and not yet dropped (bucket sizes).
    pub live_bytes: u64,
    /// The largest `live_bytes` since the device opened or the last reset.
    pub peak_live_bytes: u64,
    /// Bytes of GPU memory the pool holds, live and free.
    pub reserved_bytes: u64,
    /// Buffers created from scratch.
    pub allocations: u64,
    /// Requests served from a free list.
    pub reuses: u64,
}

struct PoolState {
    free: HashMap<u64, Vec<wgpu::Buffer>>,
    counters: PoolCounters,
}

pub(crate) struct BufferPool {
    device: wgpu::Device,
    state: Arc<Mutex<PoolState>>,
}

impl BufferPool {
    pub fn new(device: wgpu::Device) -> Self {
        Self {
            device,
            state: Arc::new(Mutex::new(PoolState {
                free: HashMap::new(),
                counters: PoolCounters::default(),
            })),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, PoolState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A buffer of at least `bytes` bytes, usable as storage and for copies.
    pub fn take(&self, bytes: u64) -> Buffer {
        let size = bucket_size(bytes);
        let mut state = self.lock();
        let reused = state.free.get_mut(&size).and_then(Vec::pop);
        let raw = match reused {
            Some(raw) => {
                state.counters.reuses += 1;
                raw
            }
            None => {
                state.counters.allocations += 1;
                state.counters.reserved_bytes += size;
                self.device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some("kiln pooled"),
                    size,
                    usage: wgpu::BufferUsages::STORAGE
                        | wgpu::BufferUsages::COPY_SRC
                        | wgpu::BufferUsages::COPY_DST,
                    mapped_at_creation: false,
                })
            }
        };
        let c = &mut state.counters;
        c.live_bytes += size;
        c.peak_live_bytes = c.peak_live_bytes.max(c.live_bytes);
        Buffer {
            inner: Arc::new(BufferInner {
                raw: Some(raw),
                size,
                state: self.state.clone(),
            }),
        }
    }

    pub fn counters(&self) -> PoolCounters {
        self.lock().counters
    }

    pub fn reset_peak(&self) {
        let mut state = self.lock();
        state.counters.peak_live_bytes = state.counters.live_bytes;
    }

    pub fn trim(&self) {
        let mut state = self.lock();
        let freed: u64 = state
            .free
            .iter()
            .map(|(size, list)| size * list.len() as u64)
            .sum();
        for list in state.free.values() {
            for b in list {
                b.destroy();
            }
        }
        state.free.clear();
        state.counters.reserved_bytes -= freed;
    }
}

struct BufferInner {
    raw: Option<wgpu::Buffer>,
    size: u64,
    state: Arc<Mutex<PoolState>>,
}

impl Drop for BufferInner {
    fn drop(&mut self) {
        if let Some(raw) = self.raw.take() {
            let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
            state.counters.live_bytes -= self.size;
            state.free.entry(self.size).or_default().push(raw);
        }
    }
}

/// A handle to a pooled GPU buffer; it returns to the pool when the last clone
/// drops.
#[derive(Clone)]
pub struct Buffer {
    inner: Arc<BufferInner>,
}

impl Buffer {
    /// Size in bytes (the bucket size, at least what was asked for).
    pub fn size(&self) -> u64 {
        self.inner.size
    }

    pub(crate) fn raw(&self) -> &wgpu::Buffer {
        self.inner
            .raw
            .as_ref()
            .expect("a live buffer always holds its wgpu buffer")
    }

    /// True when both handles name the same GPU buffer.
    pub fn same(&self, other: &Buffer) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }
}

impl std::fmt::Debug for Buffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Buffer({} bytes)", self.inner.size)
    }
}

#[cfg(test)]
mod tests {
    use super::bucket_size;

    #[test]
    fn buckets_cover_requests_with_bounded_waste() {
        for bytes in [
            1u64,
            255,
            256,
            257,
            1000,
            1025,
            5000,
            1 << 20,
            (1 << 20) + 1,
            123_456_789,
        ] {
            let b = bucket_size(bytes);
            assert!(b >= bytes && b >= 256, "{bytes} -> {b}");
            if bytes > 1024 {
                assert!(b as f64 <= bytes as f64 * 1.25 + 1.0, "{bytes} -> {b}");
            }
            assert_eq!(b % 4, 0);
        }
    }
}
