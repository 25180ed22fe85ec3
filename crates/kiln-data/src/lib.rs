//! kiln-data: datasets and loaders (CSV, image folders, CIFAR binary, time
//! windows, splits). It needs no GPU and none of the other kiln crates.
//!
//! Not implemented yet: the loaders arrive with the MLP, CNN and LSTM issues.
