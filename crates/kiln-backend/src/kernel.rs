//! A [`Kernel`] is one ready-to-encode dispatch: pipeline, bind group, its
//! parameter ("meta") buffer and the grid. Launchers build kernels once; eager
//! calls run them at once, compiled plans keep them and replay them every step.

use std::sync::Arc;

use wgpu::util::DeviceExt;

use crate::error::{BackendError, Result};
use crate::shaders::ShaderId;
use crate::{Buffer, Device};

/// A buffer bound at a binding slot of a kernel.
pub struct KernelBinding<'a> {
    pub binding: u32,
    pub buffer: &'a Buffer,
}

/// One dispatch, with everything it needs already created.
pub struct Kernel {
    pipeline: Arc<wgpu::ComputePipeline>,
    bind_group: wgpu::BindGroup,
    meta: wgpu::Buffer,
    grid: [u32; 3],
    label: String,
    /// The WGSL of a generated kernel (handwritten ones are in `shaders/`).
    source: Option<Arc<str>>,
    /// Keeps the bound buffers alive as long as the kernel.
    _buffers: Vec<Buffer>,
}

/// How many workgroups a generated kernel runs.
pub(crate) enum Grid {
    /// This many, folded into x and y (see [`Device::linear_grid`]).
    Linear(u64),
    Fixed([u32; 3]),
}

/// A generated kernel before it is built: its source, parameter words and
/// buffers (bound in order as `b0`, `b1`, …, then the words).
pub(crate) struct Generated {
    pub label: String,
    pub source: String,
    pub words: Vec<u32>,
    pub buffers: Vec<Buffer>,
    pub grid: Grid,
    /// The generator proved every access in bounds on the host, so the
    /// module is built without per-access checks.
    pub trusted: bool,
}

impl std::fmt::Debug for Kernel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kernel")
            .field("label", &self.label)
            .field("grid", &self.grid)
            .finish()
    }
}

impl Kernel {
    pub(crate) fn encode(&self, pass: &mut wgpu::ComputePass<'_>) {
        pass.set_pipeline(&self.pipeline);
        pass.set_bind_group(0, &self.bind_group, &[]);
        pass.dispatch_workgroups(self.grid[0], self.grid[1], self.grid[2]);
    }

    /// `shader/entry`, naming the kernel in profiles.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// The generated WGSL of this kernel (without the shared prelude), or
    /// `None` for a handwritten one.
    pub fn source(&self) -> Option<&str> {
        self.source.as_deref()
    }

    /// The workgroup grid of the dispatch.
    pub fn grid(&self) -> [u32; 3] {
        self.grid
    }

    /// Rewrites the kernel's parameter words (same length as at creation), e.g.
    /// a new seed for a random kernel before the next replay.
    pub fn update_meta(&self, device: &Device, words: &[u32]) -> Result<()> {
        if (words.len() * 4) as u64 != self.meta.size() {
            return Err(crate::error::invalid(
                "update_meta",
                format!(
                    "{} words given, the kernel was built with {}",
                    words.len(),
                    self.meta.size() / 4
                ),
            ));
        }
        device
            .inner
            .queue
            .write_buffer(&self.meta, 0, bytemuck::cast_slice(words));
        Ok(())
    }
}

impl Device {
    /// Builds a kernel: `meta` goes to binding `meta_binding`.
    #[allow(clippy::too_many_arguments)] // one call site per launcher; a struct would only rename them
    pub(crate) fn kernel(
        &self,
        shader: ShaderId,
        entry: &str,
        constants: &[(&str, f64)],
        bindings: &[KernelBinding<'_>],
        meta_binding: u32,
        meta: &[u32],
        grid: [u32; 3],
    ) -> Result<Kernel> {
        let limit = self.max_workgroups();
        if grid.iter().any(|&g| g > limit) {
            return Err(BackendError::Invalid {
                op: shader.name().to_string(),
                detail: format!("grid {grid:?} exceeds {limit} workgroups per dimension"),
            });
        }
        let pipeline = self.pipeline(shader, entry, constants)?;
        let label = format!("{}/{entry}", shader.name());
        self.assemble(pipeline, label, None, bindings, meta_binding, meta, grid)
    }

    /// A kernel from its pipeline: the parameter words in a buffer of their
    /// own at `meta_binding`, the bind group of `bindings`.
    #[allow(clippy::too_many_arguments)] // the parts of a Kernel, assembled once
    fn assemble(
        &self,
        pipeline: Arc<wgpu::ComputePipeline>,
        label: String,
        source: Option<Arc<str>>,
        bindings: &[KernelBinding<'_>],
        meta_binding: u32,
        meta: &[u32],
        grid: [u32; 3],
    ) -> Result<Kernel> {
        let device = &self.inner.device;
        let meta_buf = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("kiln meta"),
            contents: bytemuck::cast_slice(meta),
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST,
        });
        let mut entries: Vec<wgpu::BindGroupEntry<'_>> = bindings
            .iter()
            .map(|b| wgpu::BindGroupEntry {
                binding: b.binding,
                resource: b.buffer.raw().as_entire_binding(),
            })
            .collect();
        entries.push(wgpu::BindGroupEntry {
            binding: meta_binding,
            resource: meta_buf.as_entire_binding(),
        });
        let bind_group = device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(&label),
            layout: &pipeline.get_bind_group_layout(0),
            entries: &entries,
        });
        self.take_error(|| format!("binding the buffers of {label}"))?;
        Ok(Kernel {
            pipeline,
            bind_group,
            meta: meta_buf,
            grid,
            label,
            source,
            _buffers: bindings.iter().map(|b| b.buffer.clone()).collect(),
        })
    }

    /// Builds a generated kernel; its module is cached by its source text.
    pub(crate) fn generated_kernel(&self, g: Generated) -> Result<Kernel> {
        let grid = match g.grid {
            Grid::Linear(groups) => self.linear_grid(groups)?,
            Grid::Fixed(grid) => {
                let limit = self.max_workgroups();
                if grid.iter().any(|&d| d > limit) {
                    return Err(BackendError::Invalid {
                        op: g.label,
                        detail: format!("grid {grid:?} exceeds {limit} workgroups per dimension"),
                    });
                }
                grid
            }
        };
        let max = self.inner.limits.max_storage_buffers_per_shader_stage as usize;
        if g.buffers.len() + 1 > max {
            return Err(BackendError::Invalid {
                op: g.label,
                detail: format!(
                    "{} buffers exceed the adapter's {max} storage buffers per kernel",
                    g.buffers.len() + 1
                ),
            });
        }
        let pipeline = self.generated_pipeline(&g.source, g.trusted)?;
        let bindings: Vec<KernelBinding<'_>> = g
            .buffers
            .iter()
            .enumerate()
            .map(|(i, buffer)| KernelBinding {
                binding: i as u32,
                buffer,
            })
            .collect();
        let meta_binding = bindings.len() as u32;
        let source = Some(Arc::from(g.source));
        self.assemble(
            pipeline,
            g.label,
            source,
            &bindings,
            meta_binding,
            &g.words,
            grid,
        )
    }

    /// A grid of `groups` workgroups folded into x and y, since one dimension
    /// holds at most 65535 on most adapters. Shaders recover the linear index as
    /// `wid.y * num_workgroups.x + wid.x` and ignore the overhang.
    pub(crate) fn linear_grid(&self, groups: u64) -> Result<[u32; 3]> {
        let limit = self.max_workgroups() as u64;
        let groups = groups.max(1);
        let x = groups.min(limit);
        let y = groups.div_ceil(x);
        if y > limit {
            return Err(crate::error::invalid(
                "dispatch",
                format!("{groups} workgroups exceed the adapter's {limit}×{limit} grid"),
            ));
        }
        Ok([x as u32, y as u32, 1])
    }
}
