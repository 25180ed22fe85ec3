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
    /// Keeps the bound buffers alive as long as the kernel.
    _buffers: Vec<Buffer>,
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
            label: Some(shader.name()),
            layout: &pipeline.get_bind_group_layout(0),
            entries: &entries,
        });
        self.take_error()?;
        Ok(Kernel {
            pipeline,
            bind_group,
            meta: meta_buf,
            grid,
            label: format!("{}/{entry}", shader.name()),
            _buffers: bindings.iter().map(|b| b.buffer.clone()).collect(),
        })
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
