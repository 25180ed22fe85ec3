//! Kernel profiles: everything that decides the shape of a generated kernel,
//! in one value derived from the adapter.
//!
//! The generators never look at the adapter themselves; they read a
//! [`KernelProfile`]. Its [`KernelStrategy`] picks the family of shapes (the
//! register-blocked kernels that suit a CPU running the shader, or the
//! workgroup-tiled ones a GPU gets), while the adapter's own facts (its
//! subgroup width, its limits, whether it stops long loops) stay what the
//! adapter says. So the hardware strategy can be forced on a software
//! adapter, `KILN_KERNELS=hardware`, and every shape a GPU would get is
//! compiled and run there, in CI, with the numbers checked.
//!
//! ```no_run
//! use kiln_backend::{Device, KernelStrategy};
//! let device = Device::software()?.with_kernel_strategy(KernelStrategy::Hardware);
//! assert_eq!(device.kernel_profile().strategy, KernelStrategy::Hardware);
//! # Ok::<(), kiln_backend::BackendError>(())
//! ```

use std::fmt;

use crate::device::{AdapterSummary, DeviceKind};
use crate::error::{BackendError, Result};

/// The environment variable that forces a strategy on every device.
pub const KERNELS_ENV: &str = "KILN_KERNELS";

/// The most loop iterations one invocation of a generated kernel runs, all
/// its loops counted together, on an adapter that stops longer loops.
/// llvmpipe (lavapipe) ends an invocation's loops after 65 535 iterations in
/// all, a guard against endless loops that silently truncates long ones.
/// Generators choose strategies and splits that stay below this bound, and
/// refuse a kernel that cannot rather than compute a wrong number.
pub const MAX_LOOP_TRIPS: usize = 60_000;

/// Which family of kernel shapes the generators choose.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KernelStrategy {
    /// Shapes for a CPU that runs the shader (lavapipe, WARP, SwiftShader):
    /// register-blocked products without workgroup memory, a contiguous
    /// chunk per invocation in cooperative reductions (a CPU lane streams
    /// through memory), subgroup lanes sharing row loads where subgroups are
    /// 8 wide (lavapipe turns each divergent load into a loop over lanes).
    Software,
    /// Shapes for a GPU: workgroup-tiled products staged in workgroup
    /// memory, interleaved cooperative reductions whose neighbouring lanes
    /// read neighbouring elements (coalesced), one workgroup per output for
    /// any reduction of 512 or more elements, every lane loading its own
    /// rows.
    Hardware,
}

impl KernelStrategy {
    /// The strategy an adapter of `kind` gets unless one is forced.
    pub fn for_kind(kind: DeviceKind) -> Self {
        match kind {
            DeviceKind::Software => Self::Software,
            _ => Self::Hardware,
        }
    }

    /// Parses a `KILN_KERNELS` value: `hardware` (or `gpu`), `software`
    /// (or `cpu`), in any case.
    pub fn parse(value: &str) -> Result<Self> {
        match value.trim().to_ascii_lowercase().as_str() {
            "hardware" | "gpu" => Ok(Self::Hardware),
            "software" | "cpu" => Ok(Self::Software),
            _ => Err(BackendError::Invalid {
                op: KERNELS_ENV.to_string(),
                detail: format!(
                    "{value:?} is not a kernel strategy; expected hardware or software"
                ),
            }),
        }
    }

    /// The strategy `KILN_KERNELS` forces, if it is set and not empty.
    pub fn from_env() -> Result<Option<Self>> {
        match std::env::var(KERNELS_ENV) {
            Ok(v) if !v.trim().is_empty() => Self::parse(&v).map(Some),
            _ => Ok(None),
        }
    }
}

impl fmt::Display for KernelStrategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Software => "software",
            Self::Hardware => "hardware",
        })
    }
}

/// Where a profile's strategy came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StrategySource {
    /// The adapter's kind.
    Adapter,
    /// The `KILN_KERNELS` environment variable.
    Environment,
    /// [`crate::Device::with_kernel_strategy`].
    Code,
}

/// Everything that decides a generated kernel's shape on one device.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct KernelProfile {
    pub strategy: KernelStrategy,
    pub source: StrategySource,
    /// The adapter's kind, whatever the strategy.
    pub adapter_kind: DeviceKind,
    /// The width of the adapter's subgroups where the device was opened
    /// with subgroups and they have one fixed width; `None` otherwise.
    pub subgroup_width: Option<u32>,
    pub workgroup_memory_bytes: u32,
    pub max_invocations_per_workgroup: u32,
    pub max_workgroups_per_dimension: u32,
    pub max_storage_buffers_per_stage: u32,
    /// The most loop iterations one invocation may run, on adapters that
    /// stop longer loops (software adapters: [`MAX_LOOP_TRIPS`]); a
    /// property of the adapter, so it holds under either strategy.
    pub loop_trip_limit: Option<usize>,
}

impl KernelProfile {
    /// The profile the adapter gets by its kind, with subgroups used where
    /// `subgroups` (the device was opened with them).
    pub fn of(summary: &AdapterSummary, subgroups: bool) -> Self {
        let fixed_width = summary.subgroup_sizes.0 == summary.subgroup_sizes.1;
        Self {
            strategy: KernelStrategy::for_kind(summary.kind),
            source: StrategySource::Adapter,
            adapter_kind: summary.kind,
            subgroup_width: (subgroups && fixed_width).then_some(summary.subgroup_sizes.0),
            workgroup_memory_bytes: summary.max_workgroup_memory_bytes,
            max_invocations_per_workgroup: summary.max_invocations_per_workgroup,
            max_workgroups_per_dimension: summary.max_workgroups_per_dimension,
            max_storage_buffers_per_stage: summary.max_storage_buffers_per_stage,
            loop_trip_limit: (summary.kind == DeviceKind::Software).then_some(MAX_LOOP_TRIPS),
        }
    }

    /// The profile a device opened on the adapter gets: [`Self::of`], with
    /// the strategy `KILN_KERNELS` forces if it is set (an error if it
    /// names no strategy).
    pub fn resolve(summary: &AdapterSummary, subgroups: bool) -> Result<Self> {
        let profile = Self::of(summary, subgroups);
        Ok(match KernelStrategy::from_env()? {
            Some(strategy) => profile.forced(strategy, StrategySource::Environment),
            None => profile,
        })
    }

    /// This profile with `strategy`, recorded as coming from `source`.
    pub fn forced(mut self, strategy: KernelStrategy, source: StrategySource) -> Self {
        self.strategy = strategy;
        self.source = source;
        self
    }

    /// True under the software strategy.
    pub fn is_software(&self) -> bool {
        self.strategy == KernelStrategy::Software
    }

    /// Whether the 8×8 block kernels (GEMM, convolution) let the lanes of a
    /// subgroup work on the same rows, each loading one row's values per K
    /// step for all of them (`subgroupBroadcast`) instead of each loading
    /// all eight. It needs subgroups of exactly 8 lanes, the rows of a
    /// block, and pays where divergent loads are loops over lanes (a CPU
    /// adapter); a GPU's lanes each load their own rows, coalesced.
    pub fn shares_rows_across_lanes(&self) -> bool {
        self.is_software() && self.subgroup_width == Some(8)
    }

    /// An error unless `trips` loop iterations per invocation stay within
    /// the adapter's loop limit, if it has one.
    pub(crate) fn check_loop_trips(&self, label: &str, trips: usize, what: &str) -> Result<()> {
        match self.loop_trip_limit {
            Some(limit) if trips > limit => Err(BackendError::Invalid {
                op: label.to_string(),
                detail: format!(
                    "{what} needs {trips} loop iterations per invocation; kernels stay within {limit} (this adapter stops longer loops)"
                ),
            }),
            _ => Ok(()),
        }
    }
}

impl fmt::Display for KernelProfile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "kernels: {}", self.strategy)?;
        match self.source {
            StrategySource::Adapter => write!(f, " (the adapter's kind)")?,
            StrategySource::Environment => write!(f, " (forced by {KERNELS_ENV})")?,
            StrategySource::Code => write!(f, " (forced in code)")?,
        }
        match self.subgroup_width {
            Some(w) => write!(f, ", subgroup width {w}")?,
            None => write!(f, ", no fixed subgroup width")?,
        }
        write!(
            f,
            ", lanes share rows: {}",
            if self.shares_rows_across_lanes() {
                "yes"
            } else {
                "no"
            }
        )?;
        match self.loop_trip_limit {
            Some(l) => write!(f, ", loop limit {l} iterations"),
            None => write!(f, ", no loop limit"),
        }
    }
}
