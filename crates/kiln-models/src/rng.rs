//! The generator layers draw their initial weights and dropout seeds from,
//! like PyTorch's global one: [`manual_seed`] makes a run reproducible, and
//! layers built in the same order then start from the same values.

use std::cell::RefCell;

use kiln_data::SplitMix64;

thread_local! {
    static GENERATOR: RefCell<SplitMix64> = RefCell::new(SplitMix64::new(0));
}

/// Reseeds this thread's generator (PyTorch's `torch.manual_seed`).
///
/// ```
/// use kiln_models::{manual_seed, Linear, ModuleExt};
/// let device = kiln_backend::Device::auto()?;
/// manual_seed(7);
/// let a = Linear::new(&device, 4, 3)?;
/// manual_seed(7);
/// let b = Linear::new(&device, 4, 3)?;
/// assert_eq!(a.weight.values()?, b.weight.values()?);
/// # Ok::<(), anyhow::Error>(())
/// ```
pub fn manual_seed(seed: u64) {
    GENERATOR.with(|g| *g.borrow_mut() = SplitMix64::new(seed));
}

/// The next seed for a layer's initialisation or dropout masks.
pub fn next_seed() -> u64 {
    GENERATOR.with(|g| g.borrow_mut().next_u64())
}
