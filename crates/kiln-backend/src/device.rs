//! Adapter selection and the [`Device`] handle: the wgpu device and queue, the
//! buffer pool, the pipeline cache and the launch counters.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::error::{BackendError, Result};
use crate::pipeline::PipelineCache;
use crate::pool::{BufferPool, PoolCounters};
use crate::profile::{KernelProfile, KernelStrategy, StrategySource};

const INSTALL_HINT: &str = "install a Vulkan, Metal or DX12 driver; on Debian/Ubuntu the software \
     driver is `apt-get install -y libvulkan1 mesa-vulkan-drivers`";

/// What kind of adapter a device runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DeviceKind {
    DiscreteGpu,
    IntegratedGpu,
    VirtualGpu,
    /// A software rasteriser such as Mesa lavapipe, WARP or SwiftShader.
    Software,
    Other,
}

impl DeviceKind {
    fn from_wgpu(t: wgpu::DeviceType) -> Self {
        match t {
            wgpu::DeviceType::DiscreteGpu => Self::DiscreteGpu,
            wgpu::DeviceType::IntegratedGpu => Self::IntegratedGpu,
            wgpu::DeviceType::VirtualGpu => Self::VirtualGpu,
            wgpu::DeviceType::Cpu => Self::Software,
            wgpu::DeviceType::Other => Self::Other,
        }
    }

    /// Preference order when picking an adapter: lower is better.
    fn rank(self) -> u8 {
        match self {
            Self::DiscreteGpu => 0,
            Self::IntegratedGpu => 1,
            Self::VirtualGpu => 2,
            Self::Other => 3,
            Self::Software => 4,
        }
    }

    /// True for hardware adapters.
    pub fn is_hardware(self) -> bool {
        self != Self::Software
    }
}

/// One adapter as `kiln devices` shows it: identity and the limits and features
/// kiln cares about.
#[derive(Clone, Debug)]
pub struct AdapterSummary {
    pub name: String,
    pub backend: String,
    pub kind: DeviceKind,
    pub driver: String,
    pub driver_info: String,
    pub max_storage_binding_bytes: u64,
    pub max_buffer_bytes: u64,
    pub max_storage_buffers_per_stage: u32,
    pub max_workgroup_memory_bytes: u32,
    pub max_invocations_per_workgroup: u32,
    pub max_workgroups_per_dimension: u32,
    pub subgroups: bool,
    pub subgroup_sizes: (u32, u32),
    pub shader_f16: bool,
    pub timestamp_query: bool,
    pub cooperative_matrix: bool,
}

impl AdapterSummary {
    fn of(adapter: &wgpu::Adapter) -> Self {
        let info = adapter.get_info();
        let limits = adapter.limits();
        let features = adapter.features();
        Self {
            name: info.name,
            backend: format!("{:?}", info.backend),
            kind: DeviceKind::from_wgpu(info.device_type),
            driver: info.driver,
            driver_info: info.driver_info,
            max_storage_binding_bytes: limits.max_storage_buffer_binding_size,
            max_buffer_bytes: limits.max_buffer_size,
            max_storage_buffers_per_stage: limits.max_storage_buffers_per_shader_stage,
            max_workgroup_memory_bytes: limits.max_compute_workgroup_storage_size,
            max_invocations_per_workgroup: limits.max_compute_invocations_per_workgroup,
            max_workgroups_per_dimension: limits.max_compute_workgroups_per_dimension,
            subgroups: features.contains(wgpu::Features::SUBGROUP),
            subgroup_sizes: (info.subgroup_min_size, info.subgroup_max_size),
            shader_f16: features.contains(wgpu::Features::SHADER_F16),
            timestamp_query: features.contains(wgpu::Features::TIMESTAMP_QUERY),
            cooperative_matrix: features.contains(wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX),
        }
    }
}

impl fmt::Display for AdapterSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let yes = |b: bool| if b { "yes" } else { "no" };
        writeln!(f, "{} ({}, {:?})", self.name, self.backend, self.kind)?;
        writeln!(f, "  driver: {} {}", self.driver, self.driver_info)?;
        writeln!(
            f,
            "  storage binding: {} MiB, buffer: {} MiB, storage buffers/stage: {}",
            self.max_storage_binding_bytes >> 20,
            self.max_buffer_bytes >> 20,
            self.max_storage_buffers_per_stage
        )?;
        writeln!(
            f,
            "  workgroup memory: {} KiB, invocations/workgroup: {}, workgroups/dimension: {}",
            self.max_workgroup_memory_bytes / 1024,
            self.max_invocations_per_workgroup,
            self.max_workgroups_per_dimension
        )?;
        write!(
            f,
            "  subgroups: {} (sizes {}..{}), shader-f16: {}, timestamp queries: {}, cooperative matrix: {}",
            yes(self.subgroups),
            self.subgroup_sizes.0,
            self.subgroup_sizes.1,
            yes(self.shader_f16),
            yes(self.timestamp_query),
            yes(self.cooperative_matrix)
        )
    }
}

fn instance() -> wgpu::Instance {
    crate::runtime_dir::ensure_runtime_dir();
    let mut desc = wgpu::InstanceDescriptor::new_without_display_handle();
    desc.backends = wgpu::Backends::VULKAN | wgpu::Backends::METAL | wgpu::Backends::DX12;
    wgpu::Instance::new(desc)
}

fn adapters(instance: &wgpu::Instance) -> Vec<wgpu::Adapter> {
    pollster::block_on(instance.enumerate_adapters(wgpu::Backends::all()))
}

/// Every adapter wgpu can see, in preference order (hardware first).
pub fn list_adapters() -> Vec<AdapterSummary> {
    let mut all: Vec<AdapterSummary> = adapters(&instance())
        .iter()
        .map(AdapterSummary::of)
        .collect();
    all.sort_by_key(|a| a.kind.rank());
    all
}

/// Counters of work sent to the device, for tests and benchmarks.
#[derive(Default)]
pub(crate) struct LaunchCounters {
    pub submissions: AtomicU64,
    pub dispatches: AtomicU64,
}

pub(crate) struct Inner {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub summary: AdapterSummary,
    pub limits: wgpu::Limits,
    pub pool: BufferPool,
    pub pipelines: PipelineCache,
    pub counters: LaunchCounters,
    /// What wgpu reported outside any error scope, taken at the next check.
    pub errors: Arc<Mutex<Vec<wgpu::Error>>>,
    /// Why the device was lost, once it is.
    pub lost: Arc<Mutex<Option<String>>>,
    /// Submissions not yet known to be finished, oldest first, and how many
    /// may be in flight before a submit waits for the oldest.
    pub in_flight: Mutex<InFlight>,
}

/// The bound on work queued ahead of the device.
pub(crate) struct InFlight {
    pub queued: std::collections::VecDeque<wgpu::SubmissionIndex>,
    pub limit: usize,
    /// Writes through the queue since the last submission, and their
    /// bytes: wgpu holds each in its own staging memory until one.
    pub unsubmitted_writes: u64,
    pub unsubmitted_bytes: u64,
}

/// Writes, or written bytes, after which a write flushes the queue by
/// itself, so that writes with no work after them (loading weights again
/// and again) keep bounded staging memory.
const MAX_UNSUBMITTED_WRITES: u64 = 1024;
const MAX_UNSUBMITTED_BYTES: u64 = 256 << 20;

/// Submissions that may run ahead of a GPU by default: the next step is
/// encoded and its batch uploaded while the previous ones run, and the host
/// never gets more than this far ahead. A software adapter runs on the
/// host's own cores, where a host racing ahead only takes them from it
/// (measured in BENCHMARKS.md), so there each submission is waited for.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 3;

/// The default bound on queued submissions for an adapter of `kind`.
pub fn default_max_in_flight(kind: DeviceKind) -> usize {
    match kind {
        DeviceKind::Software => 1,
        _ => DEFAULT_MAX_IN_FLIGHT,
    }
}

/// A GPU (or software adapter) with kiln's buffer pool and pipeline cache,
/// and the [`KernelProfile`] its generated kernels are shaped for.
/// Cloning is cheap: clones share the same device.
#[derive(Clone)]
pub struct Device {
    pub(crate) inner: Arc<Inner>,
    profile: Arc<KernelProfile>,
}

impl fmt::Debug for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Device({}, {:?}, {} kernels)",
            self.inner.summary.name, self.inner.summary.kind, self.profile.strategy
        )
    }
}

impl Device {
    /// Picks an adapter: `KILN_DEVICE` if set (`gpu`, `software`, or part of an
    /// adapter name), else the best hardware adapter, else the software adapter
    /// with a one-line notice on stderr.
    pub fn auto() -> Result<Self> {
        match std::env::var("KILN_DEVICE") {
            Ok(wanted) if !wanted.trim().is_empty() => Self::matching(wanted.trim()),
            _ => {
                let device = Self::best(|_| true)?;
                if !device.kind().is_hardware() {
                    eprintln!(
                        "kiln: no hardware GPU found; running on the software adapter {}",
                        device.name()
                    );
                }
                Ok(device)
            }
        }
    }

    /// The software adapter (Mesa lavapipe, WARP, SwiftShader).
    pub fn software() -> Result<Self> {
        Self::best(|s| s.kind == DeviceKind::Software).map_err(|_| BackendError::NoAdapter {
            hint: format!("no software adapter; {INSTALL_HINT}"),
        })
    }

    /// The software adapter without subgroups: kernels take the shapes they
    /// have on adapters that lack them (for tests of those shapes, and for
    /// a driver whose subgroups misbehave).
    pub fn software_without_subgroups() -> Result<Self> {
        let (mut summary, adapter) = Self::pick(|s| s.kind == DeviceKind::Software)?;
        summary.subgroups = false;
        Self::open(adapter, summary)
    }

    /// The best hardware adapter, or an error when there is none.
    pub fn gpu() -> Result<Self> {
        Self::best(|s| s.kind.is_hardware()).map_err(|_| BackendError::NoAdapter {
            hint: "KILN_DEVICE=gpu but no hardware adapter is present (use KILN_DEVICE=software)"
                .into(),
        })
    }

    /// Resolves a `KILN_DEVICE` value.
    pub fn matching(wanted: &str) -> Result<Self> {
        match wanted.to_ascii_lowercase().as_str() {
            "gpu" => Self::gpu(),
            "software" | "cpu" => Self::software(),
            needle => {
                let needle = needle.to_string();
                Self::best(|s| s.name.to_ascii_lowercase().contains(&needle)).map_err(|_| {
                    BackendError::AdapterNotFound {
                        wanted: wanted.to_string(),
                        available: list_adapters()
                            .iter()
                            .map(|a| a.name.clone())
                            .collect::<Vec<_>>()
                            .join(", "),
                    }
                })
            }
        }
    }

    fn best(accept: impl Fn(&AdapterSummary) -> bool) -> Result<Self> {
        let (summary, adapter) = Self::pick(accept)?;
        Self::open(adapter, summary)
    }

    /// The most preferred adapter that `accept` takes.
    fn pick(accept: impl Fn(&AdapterSummary) -> bool) -> Result<(AdapterSummary, wgpu::Adapter)> {
        let instance = instance();
        let mut found: Vec<(AdapterSummary, wgpu::Adapter)> = adapters(&instance)
            .into_iter()
            .map(|a| (AdapterSummary::of(&a), a))
            .filter(|(s, _)| accept(s))
            .collect();
        found.sort_by_key(|(s, _)| s.kind.rank());
        found
            .into_iter()
            .next()
            .ok_or_else(|| BackendError::NoAdapter {
                hint: INSTALL_HINT.to_string(),
            })
    }

    fn open(adapter: wgpu::Adapter, summary: AdapterSummary) -> Result<Self> {
        let profile = KernelProfile::resolve(&summary, summary.subgroups)?;
        // The adapter's own limits: lavapipe, for one, allows far more storage
        // buffers and workgroup memory than the WebGPU defaults.
        let limits = adapter.limits();
        let desc = wgpu::DeviceDescriptor {
            label: Some("kiln"),
            // Subgroups where there are: the GEMM and convolution kernels
            // share loads across lanes with them.
            required_features: match summary.subgroups {
                true => wgpu::Features::SUBGROUP,
                false => wgpu::Features::empty(),
            },
            required_limits: limits.clone(),
            experimental_features: wgpu::ExperimentalFeatures::disabled(),
            memory_hints: wgpu::MemoryHints::Performance,
            trace: wgpu::Trace::Off,
        };
        let (device, queue) = pollster::block_on(adapter.request_device(&desc)).map_err(|e| {
            BackendError::RequestDevice {
                adapter: summary.name.clone(),
                reason: e.to_string(),
            }
        })?;
        // Without these, wgpu panics on an uncaptured error and logs a lost
        // device: kiln turns both into errors at the next check.
        let errors = Arc::new(Mutex::new(Vec::new()));
        let sink = errors.clone();
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            sink.lock().unwrap_or_else(|p| p.into_inner()).push(e);
        }));
        let lost = Arc::new(Mutex::new(None));
        let lost_sink = lost.clone();
        device.set_device_lost_callback(move |reason, message| {
            *lost_sink.lock().unwrap_or_else(|p| p.into_inner()) =
                Some(format!("{reason:?}: {message}"));
        });
        let max_in_flight = default_max_in_flight(summary.kind);
        Ok(Self {
            profile: Arc::new(profile),
            inner: Arc::new(Inner {
                pool: BufferPool::new(device.clone()),
                pipelines: PipelineCache::default(),
                device,
                queue,
                summary,
                limits,
                counters: LaunchCounters::default(),
                errors,
                lost,
                in_flight: Mutex::new(InFlight {
                    queued: Default::default(),
                    limit: max_in_flight,
                    unsubmitted_writes: 0,
                    unsubmitted_bytes: 0,
                }),
            }),
        })
    }

    /// This device (the same buffers, pipelines and queue) with its
    /// generated kernels shaped by `strategy` instead, whatever the adapter
    /// or `KILN_KERNELS` says: the hardware strategy on a software adapter
    /// compiles and runs the shapes a GPU gets.
    pub fn with_kernel_strategy(&self, strategy: KernelStrategy) -> Device {
        let profile = (*self.profile)
            .clone()
            .forced(strategy, StrategySource::Code);
        Device {
            inner: self.inner.clone(),
            profile: Arc::new(profile),
        }
    }

    /// What decides the shapes of this device's generated kernels.
    pub fn kernel_profile(&self) -> &KernelProfile {
        &self.profile
    }

    /// True when both handles name the same opened device (buffers of one
    /// cannot be bound by the other).
    pub fn same(&self, other: &Device) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    /// The adapter's name, e.g. `llvmpipe (LLVM 15.0.6, 256 bits)`.
    pub fn name(&self) -> &str {
        &self.inner.summary.name
    }

    /// Hardware or software, discrete or integrated.
    pub fn kind(&self) -> DeviceKind {
        self.inner.summary.kind
    }

    /// The adapter's identity, limits and features.
    pub fn summary(&self) -> &AdapterSummary {
        &self.inner.summary
    }

    /// The largest buffer binding the adapter allows, in bytes.
    pub fn max_binding_bytes(&self) -> u64 {
        self.inner
            .summary
            .max_storage_binding_bytes
            .min(self.inner.summary.max_buffer_bytes)
    }

    /// Live, peak and reserved bytes of the buffer pool.
    pub fn pool_counters(&self) -> PoolCounters {
        self.inner.pool.counters()
    }

    /// Restarts the pool's peak-bytes counter from the bytes live now.
    pub fn reset_peak(&self) {
        self.inner.pool.reset_peak();
    }

    /// Releases pooled buffers that no tensor uses.
    pub fn trim_pool(&self) {
        self.inner.pool.trim();
    }

    /// Number of `queue.submit` calls so far.
    pub fn submissions(&self) -> u64 {
        self.inner.counters.submissions.load(Ordering::Relaxed)
    }

    /// Number of compute dispatches encoded so far.
    pub fn dispatches(&self) -> u64 {
        self.inner.counters.dispatches.load(Ordering::Relaxed)
    }

    pub(crate) fn max_workgroups(&self) -> u32 {
        self.inner.limits.max_compute_workgroups_per_dimension
    }

    /// Encodes `kernels` into one compute pass and submits it once.
    pub fn run(&self, kernels: &[&crate::Kernel]) -> Result<()> {
        self.run_with(kernels, |_| {})
    }

    /// Like [`Device::run`], and lets `after` add copies to the same submission
    /// (for reading results back).
    pub(crate) fn run_with(
        &self,
        kernels: &[&crate::Kernel],
        after: impl FnOnce(&mut wgpu::CommandEncoder),
    ) -> Result<()> {
        let inner = &self.inner;
        let mut encoder = inner
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("kiln"),
            });
        {
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("kiln"),
                timestamp_writes: None,
            });
            for k in kernels {
                k.encode(&mut pass);
            }
        }
        after(&mut encoder);
        let index = inner.queue.submit([encoder.finish()]);
        inner.counters.submissions.fetch_add(1, Ordering::Relaxed);
        inner
            .counters
            .dispatches
            .fetch_add(kernels.len() as u64, Ordering::Relaxed);
        // Nothing waits for this submission unless something is read back;
        // only when too many are queued does the host wait for the oldest.
        let oldest = {
            let mut f = self.lock_in_flight();
            f.unsubmitted_writes = 0;
            f.unsubmitted_bytes = 0;
            f.queued.push_back(index);
            if f.queued.len() > f.limit {
                f.queued.pop_front()
            } else {
                None
            }
        };
        if let Some(index) = oldest {
            self.poll(wgpu::PollType::Wait {
                submission_index: Some(index),
                timeout: None,
            })?;
        }
        self.take_error(|| submission(kernels))
    }

    fn poll(&self, how: wgpu::PollType) -> Result<()> {
        let polled = self.inner.device.poll(how).map(drop);
        self.check_lost()?;
        polled.map_err(|e| BackendError::Wgpu(e.to_string()))
    }

    /// A [`BackendError::DeviceLost`] once the device is lost.
    fn check_lost(&self) -> Result<()> {
        match &*self.inner.lost.lock().unwrap_or_else(|p| p.into_inner()) {
            Some(reason) => Err(BackendError::DeviceLost {
                reason: reason.clone(),
            }),
            None => Ok(()),
        }
    }

    /// Releases the device now, as a driver reset or an unplugged GPU
    /// would lose it: every later call on it (or on a clone) is a
    /// [`BackendError::DeviceLost`] error. For checking what a run does
    /// when its device goes.
    pub fn destroy(&self) {
        self.inner.device.destroy();
        let _ = self.inner.device.poll(wgpu::PollType::Poll);
    }

    fn lock_in_flight(&self) -> std::sync::MutexGuard<'_, InFlight> {
        self.inner
            .in_flight
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// How many submissions may be queued ahead of the device before a
    /// submit waits (at least 1: wait after every submission);
    /// [`default_max_in_flight`] of the adapter's kind unless set.
    pub fn set_max_in_flight(&self, submissions: usize) {
        self.lock_in_flight().limit = submissions.max(1);
    }

    /// Submissions sent since the host last waited for the device (at most
    /// the in-flight bound): work that may still be running.
    pub fn queued_submissions(&self) -> usize {
        self.lock_in_flight().queued.len()
    }

    /// Waits for all submitted work.
    pub fn synchronize(&self) -> Result<()> {
        self.poll(wgpu::PollType::wait_indefinitely())?;
        self.lock_in_flight().queued.clear();
        self.take_error(|| "waiting for the device".into())
    }

    /// Writes `data` into `buffer` at `byte_offset` (queued before the next submit).
    pub fn write(&self, buffer: &crate::Buffer, byte_offset: u64, data: &[u8]) -> Result<()> {
        if byte_offset + data.len() as u64 > buffer.size() {
            return Err(crate::error::invalid(
                "write",
                format!(
                    "{} bytes at offset {byte_offset} do not fit a {}-byte buffer",
                    data.len(),
                    buffer.size()
                ),
            ));
        }
        self.inner
            .queue
            .write_buffer(buffer.raw(), byte_offset, data);
        let flush = {
            let mut f = self.lock_in_flight();
            f.unsubmitted_writes += 1;
            f.unsubmitted_bytes += data.len() as u64;
            f.unsubmitted_writes > MAX_UNSUBMITTED_WRITES
                || f.unsubmitted_bytes > MAX_UNSUBMITTED_BYTES
        };
        if flush {
            self.run(&[])?;
            self.poll(wgpu::PollType::Poll)?;
        }
        Ok(())
    }

    /// The first of what wgpu reported since the last check, as a typed
    /// error naming what kiln was doing (`during`): the device lost, out of
    /// memory, or a validation error.
    pub(crate) fn take_error(&self, during: impl FnOnce() -> String) -> Result<()> {
        self.check_lost()?;
        let first = {
            let mut errors = self.inner.errors.lock().unwrap_or_else(|p| p.into_inner());
            let first = errors.drain(..).next();
            first
        };
        match first {
            None => Ok(()),
            Some(e) => Err(fault(e, during())),
        }
    }

    /// A buffer of `bytes` from the pool, an out-of-memory error naming
    /// `what` if the device has no room for it.
    pub(crate) fn take_buffer(&self, what: &str, bytes: u64) -> Result<crate::Buffer> {
        let scope = self
            .inner
            .device
            .push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let buffer = self.inner.pool.take(bytes);
        match pollster::block_on(scope.pop()) {
            Some(e) => Err(fault(e, format!("allocating {what} ({bytes} bytes)"))),
            None => self.check_lost().map(|()| buffer),
        }
    }
}

/// A wgpu error as kiln's, naming what kiln was doing.
fn fault(e: wgpu::Error, during: String) -> BackendError {
    match e {
        wgpu::Error::OutOfMemory { source } => BackendError::OutOfMemory {
            during,
            detail: source.to_string(),
        },
        wgpu::Error::Validation { description, .. } => BackendError::Validation {
            during,
            detail: description,
        },
        other => BackendError::Wgpu(format!("{during}: {other}")),
    }
}

/// What a submission ran, for its errors: how many kernels, and the first
/// few labels.
fn submission(kernels: &[&crate::Kernel]) -> String {
    let labels: Vec<&str> = kernels.iter().take(3).map(|k| k.label()).collect();
    let more = if kernels.len() > 3 { ", …" } else { "" };
    format!(
        "a submission of {} kernels ({}{more})",
        kernels.len(),
        labels.join(", ")
    )
}
