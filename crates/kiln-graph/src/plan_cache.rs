//! Plans are compiled for fixed shapes; a [`PlanCache`] keeps one per set of
//! input shapes, so the last, smaller batch of an epoch gets (and keeps) its
//! own plan while the full batches reuse theirs. Parameters live in the
//! [`crate::ParamStore`], so every plan reads and updates the same values.

use std::collections::HashMap;

use crate::plan::Plan;

/// The input names and shapes a plan was compiled for.
pub type ShapeKey = Vec<(String, Vec<usize>)>;

/// Compiled plans keyed by their input shapes.
#[derive(Default)]
pub struct PlanCache {
    plans: HashMap<ShapeKey, Plan>,
    compilations: usize,
}

impl PlanCache {
    pub fn new() -> Self {
        Self::default()
    }

    /// The plan for `shapes`, compiled by `compile` on first use.
    ///
    /// ```no_run
    /// # use kiln_graph::*;
    /// # fn build(batch: usize) -> Result<Plan> { unimplemented!() }
    /// let mut cache = PlanCache::new();
    /// for batch in [32, 32, 10] {
    ///     let plan = cache.get_or_compile(&[("x", &[batch, 30])], || build(batch))?;
    /// }
    /// assert_eq!(cache.len(), 2);
    /// # Ok::<(), GraphError>(())
    /// ```
    pub fn get_or_compile<E>(
        &mut self,
        shapes: &[(&str, &[usize])],
        compile: impl FnOnce() -> std::result::Result<Plan, E>,
    ) -> std::result::Result<&mut Plan, E> {
        let key: ShapeKey = shapes
            .iter()
            .map(|(n, s)| (n.to_string(), s.to_vec()))
            .collect();
        if !self.plans.contains_key(&key) {
            let plan = compile()?;
            self.compilations += 1;
            self.plans.insert(key.clone(), plan);
        }
        Ok(self.plans.get_mut(&key).expect("inserted above"))
    }

    /// Number of plans held.
    pub fn len(&self) -> usize {
        self.plans.len()
    }

    pub fn is_empty(&self) -> bool {
        self.plans.is_empty()
    }

    /// How many times a plan had to be compiled.
    pub fn compilations(&self) -> usize {
        self.compilations
    }
}
