//! The tutorial's MLP on the breast-cancer data set. Not implemented yet: the
//! layers, the fit loop and the CSV loader arrive with the MLP issue. Until
//! then this example says so and fails, rather than pretend to train.

fn main() -> anyhow::Result<()> {
    let device = kiln::Device::auto()?;
    anyhow::bail!(
        "the MLP example is not implemented yet (kiln has its device, kernels and \
         graph so far; adapter found: {}). See README.md, Status.",
        device.name()
    )
}
