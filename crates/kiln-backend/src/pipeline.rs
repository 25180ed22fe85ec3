//! The pipeline cache: one compute pipeline per (shader, entry point, override
//! constants) and per generated source, created on first use and shared
//! afterwards.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crate::error::Result;
use crate::shaders::ShaderId;
use crate::Device;

type Pipeline = Arc<wgpu::ComputePipeline>;

/// Pipelines by key, each built once even when plans build kernels on
/// several threads: a thread that finds an entry another is filling waits
/// for it instead of compiling the same shader again.
struct BuiltOnce<K> {
    entries: Mutex<HashMap<K, Arc<Mutex<Option<Pipeline>>>>>,
    /// Pipelines created: one per key unless two threads built one twice.
    built: AtomicUsize,
}

impl<K> Default for BuiltOnce<K> {
    fn default() -> Self {
        Self {
            entries: Mutex::default(),
            built: AtomicUsize::new(0),
        }
    }
}

impl<K: std::hash::Hash + Eq> BuiltOnce<K> {
    fn get_or_build(&self, key: K, build: impl FnOnce() -> Result<Pipeline>) -> Result<Pipeline> {
        let entry = self
            .entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(key)
            .or_default()
            .clone();
        let mut entry = entry.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(p) = entry.as_ref() {
            return Ok(p.clone());
        }
        let pipeline = build()?;
        self.built.fetch_add(1, Ordering::Relaxed);
        *entry = Some(pipeline.clone());
        Ok(pipeline)
    }

    fn built(&self) -> usize {
        self.built.load(Ordering::Relaxed)
    }
}

#[derive(Default)]
pub(crate) struct PipelineCache {
    pipelines: BuiltOnce<String>,
    modules: Mutex<HashMap<ShaderId, Arc<wgpu::ShaderModule>>>,
    /// Generated kernels by source text (their structure).
    generated: BuiltOnce<String>,
}

impl Device {
    /// The pipeline for `entry` of `shader` specialised with `constants`.
    pub(crate) fn pipeline(
        &self,
        shader: ShaderId,
        entry: &str,
        constants: &[(&str, f64)],
    ) -> Result<Pipeline> {
        let key = format!("{shader:?}/{entry}/{constants:?}");
        let cache = &self.inner.pipelines;
        cache.pipelines.get_or_build(key.clone(), || {
            let module = {
                let mut modules = cache.modules.lock().unwrap_or_else(|p| p.into_inner());
                modules
                    .entry(shader)
                    .or_insert_with(|| {
                        let desc = wgpu::ShaderModuleDescriptor {
                            label: Some(shader.name()),
                            source: wgpu::ShaderSource::Wgsl(shader.source().into()),
                        };
                        Arc::new(self.inner.device.create_shader_module(desc))
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
            self.take_error(|| format!("building the pipeline {key}"))?;
            Ok(Arc::new(pipeline))
        })
    }

    /// The pipeline of a generated kernel's source (entry `main`), built on
    /// first use with the shared prelude in front.
    pub(crate) fn generated_pipeline(&self, source: &str, trusted: bool) -> Result<Pipeline> {
        self.inner
            .pipelines
            .generated
            .get_or_build(source.to_string(), || {
                let full = format!("{}\n{source}", crate::shaders::prelude());
                let desc = wgpu::ShaderModuleDescriptor {
                    label: Some("kiln generated"),
                    source: wgpu::ShaderSource::Wgsl(full.into()),
                };
                let module = if trusted {
                    // SAFETY: the generators check on the host that every
                    // layout's last element lies inside its buffer and clamp
                    // or guard every index they compute, so no access leaves
                    // its binding.
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
                self.take_error(|| "building a generated kernel's pipeline".into())?;
                Ok(Arc::new(pipeline))
            })
    }

    /// Number of pipelines created so far (each distinct one once).
    pub fn pipeline_count(&self) -> usize {
        let cache = &self.inner.pipelines;
        cache.pipelines.built() + cache.generated.built()
    }
}
