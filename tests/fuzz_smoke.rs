//! A bounded fuzzing run of every file reader inside `cargo test`: seeded
//! mutations of valid files (see `kiln::fuzz`) must load or be refused
//! with an error, never panic or hang. cargo-fuzz runs the same readers
//! without a bound (`fuzz/`, FUZZING.md).

use std::io::Write;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kiln::data::SplitMix64;
use kiln::fuzz::{mutate, Harness, Reader};

/// Mutated inputs per reader; the conformance reader compiles a plan per
/// input, so it gets fewer.
fn budget(reader: Reader) -> usize {
    match reader {
        Reader::Conformance | Reader::Checkpoint => 60,
        _ => 300,
    }
}

/// The longest one input may take.
const LIMIT: Duration = Duration::from_secs(20);

/// What is running now: since when, which input, its bytes.
type Current = Arc<Mutex<Option<(Instant, String, Vec<u8>)>>>;

/// Watches the input being read from another thread: one that runs past
/// [`LIMIT`] is kept in `scratch` and the test binary exits with a failure
/// (101, as a failed test does), so a hang fails the run instead of
/// blocking it.
fn watchdog(scratch: PathBuf) -> Current {
    let current: Current = Arc::default();
    let watched = current.clone();
    std::thread::spawn(move || loop {
        std::thread::sleep(Duration::from_millis(200));
        let now = watched.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((start, what, bytes)) = now.as_ref() {
            if start.elapsed() > LIMIT {
                let keep = scratch.join("hang");
                let _ = std::fs::write(&keep, bytes);
                // Straight to stderr: the test harness's capture of
                // eprintln! would be lost with the exit.
                let _ = writeln!(
                    std::io::stderr(),
                    "{what} is still running after {:?}: a hang; the input is kept at {}",
                    start.elapsed(),
                    keep.display()
                );
                std::process::exit(101);
            }
        }
    });
    current
}

#[test]
fn mutated_files_never_panic_or_hang_any_reader() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let scratch = std::env::temp_dir().join(format!("kiln-fuzz-smoke-{}", std::process::id()));
    let mut harness = Harness::new(&scratch).unwrap();
    let current = watchdog(scratch.clone());
    let mut rng = SplitMix64::new(0x5eed);
    for &reader in Reader::ALL {
        let seeds = harness.seeds(reader, root);
        assert!(
            !seeds.is_empty() && seeds.iter().all(|s| !s.is_empty()),
            "{reader:?}: no seed inputs"
        );
        // `KILN_FUZZ_SEEDS_OUT=fuzz/seeds` also writes them as cargo-fuzz's
        // starting corpus, one folder per target.
        if let Some(out) = std::env::var_os("KILN_FUZZ_SEEDS_OUT") {
            let dir = Path::new(&out).join(format!("{reader:?}").to_lowercase());
            std::fs::create_dir_all(&dir).unwrap();
            for (k, seed) in seeds.iter().enumerate() {
                std::fs::write(dir.join(format!("seed-{k}")), seed).unwrap();
            }
        }
        for seed in &seeds {
            harness
                .run(reader, seed)
                .unwrap_or_else(|e| panic!("{reader:?}: a valid seed was refused: {e}"));
        }
        let (mut loaded, mut refused) = (0, 0);
        for case in 0..budget(reader) {
            let mut bytes = seeds[case % seeds.len()].clone();
            for _ in 0..1 + rng.below(4) {
                mutate(&mut bytes, &mut rng);
            }
            let start = Instant::now();
            *current.lock().unwrap() =
                Some((start, format!("{reader:?} input {case}"), bytes.clone()));
            let outcome = catch_unwind(AssertUnwindSafe(|| harness.run(reader, &bytes)));
            *current.lock().unwrap() = None;
            match outcome {
                Ok(Ok(())) => loaded += 1,
                Ok(Err(_)) => refused += 1,
                Err(_) => {
                    let keep = scratch.join(format!("crash-{reader:?}-{case}"));
                    std::fs::write(&keep, &bytes).unwrap();
                    panic!(
                        "{reader:?} panicked on mutated input {case}, kept at {}",
                        keep.display()
                    );
                }
            }
            assert!(
                start.elapsed() < LIMIT,
                "{reader:?}: input {case} took {:?}",
                start.elapsed()
            );
        }
        eprintln!("{reader:?}: {loaded} loaded, {refused} refused");
        assert!(
            refused > 0,
            "{reader:?}: no mutation was refused, so none reached the checks"
        );
    }
    let _ = std::fs::remove_dir_all(&scratch);
}
