//! kiln-models: layers, the four models, losses, optimizers, the fit loop,
//! callbacks and checkpoints, built on kiln-graph.
//!
//! Not implemented yet: the layers arrive with the MLP issue.
