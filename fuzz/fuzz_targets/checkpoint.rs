//! Fuzzes the checkpoint reader (see ../../FUZZING.md).
#![no_main]
include!("reader_target.rs");
reader_target!(Checkpoint);
