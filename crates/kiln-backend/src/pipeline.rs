//! The pipeline cache: one compute pipeline per (shader, entry point, override
//! constants), created on first use and shared afterwards.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::error::Result;
use crate::shaders::ShaderId;
use crate::Device;

#[derive(Default)]
pub(crate) struct PipelineCache {
    pipelines: Mutex<HashMap<String, Arc<wgpu::ComputePipeline>>>,
    modules: Mutex<HashMap<ShaderId, Arc<wgpu::ShaderModule>>>,
    /// Generated kernels by source text (their structure).
    generated: Mutex<HashMap<String, Arc<wgpu::ComputePipeline>>>,
}

impl Device {
    /// The pipeline for `entry` of `shader` specialised with `constants`.
    pub(crate) fn pipeline(
        &self,
        shader: ShaderId,
        entry: &str,
        constants: &[(&str, f64)],
    ) -> Result<Arc<wgpu::ComputePipeline>> {
        let key = format!("{shader:?}/{entry}/{constants:?}");
        let cache = &self.inner.pipelines;
        if let Some(p) = cache
            .pipelines
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
        {
            return Ok(p.clone());
        }
        let module = {
            let mut modules = cache.modules.lock().unwrap_or_else(|p| p.into_inner());
            modules
                .entry(shader)
                .or_insert_with(|| {
                    let desc = wgpu::ShaderModuleDescriptor {
                        label: Some(shader.name()),
                        source: wgpu::ShaderSource::Wgsl(shader.source().into()),
                    };
                    let module = self.inner.device.create_shader_module(desc);
                    Arc::new(module)
                })
                .clone()
        };
        let pipeline =
            self.inner
                .device
                .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                    label: Some(&key),
                    layout: None,
                    module: &module,
                    entry_point: Some(entry),
                    compilation_options: wgpu::PipelineCompilationOptions {
                        constants,
                        zero_initialize_workgroup_memory: false,
                    },
                    cache: None,
                });
        self.take_error()?;
        let pipeline = Arc::new(pipeline);
        cache
            .pipelines
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key, pipeline.clone());
        Ok(pipeline)
    }

    /// The pipeline of a generated kernel's source (entry `main`), built on
    /// first use with the shared prelude in front.
    pub(crate) fn generated_pipeline(
        &self,
        source: &str,
        trusted: bool,
    ) -> Result<Arc<wgpu::ComputePipeline>> {
        let cache = &self.inner.pipelines;
        if let Some(p) = cache
            .generated
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(source)
        {
            return Ok(p.clone());
        }
        let full = format!("{}\n{source}", crate::shaders::prelude());
        let desc = wgpu::ShaderModuleDescriptor {
            label: Some("kiln generated"),
            source: wgpu::ShaderSource::Wgsl(full.into()),
        };
        let module = if trusted {
            // SAFETY: the generators check on the host that every layout's
            // last element lies inside its buffer and clamp or guard every
            // index they compute, so no access leaves its binding.
            unsafe {
                self.inner.device.create_shader_module_trusted(
                    desc,
                    wgpu::ShaderRuntimeChecks {
                        bounds_checks: false,
                        ..wgpu::ShaderRuntimeChecks::checked()
                    },
                )
            }
        } else {
            self.inner.device.create_shader_module(desc)
        };
        let pipeline =
            self.inner
                .device
                .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                    label: Some("kiln generated"),
                    layout: None,
                    module: &module,
                    entry_point: Some("main"),
                    compilation_options: wgpu::PipelineCompilationOptions {
                        constants: &[],
                        zero_initialize_workgroup_memory: false,
                    },
                    cache: None,
                });
        self.take_error()?;
        let pipeline = Arc::new(pipeline);
        cache
            .generated
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(source.to_string(), pipeline.clone());
        Ok(pipeline)
    }

    /// Number of distinct pipelines created so far.
    pub fn pipeline_count(&self) -> usize {
        self.inner
            .pipelines
            .pipelines
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .len()
            + self
                .inner
                .pipelines
                .generated
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .len()
    }
}
