//! Process-level crash safety: a training process killed with SIGKILL while
//! it writes checkpoints in a loop leaves the newest complete checkpoint
//! loadable, holding bit for bit the weights of an uninterrupted run
//! trained to the same epoch in this process, and training resumes from it.
//!
//! The test runs this same test binary as the child, told by an environment
//! variable to train and checkpoint until it is killed.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use kiln::models::checkpoint;
use kiln::prelude::*;

mod common;
use common::compare;

const CHILD_DIR: &str = "KILN_CRASH_TEST_CHILD_DIR";
const TEST_NAME: &str = "a_checkpoint_written_when_the_process_is_killed_still_loads_and_resumes";
const FEATURES: usize = 256;
const BATCH: usize = 32;

/// Large enough (about 1.3 M weights, three copies with Adam's state: some
/// 16 MB) that a kill often lands in the middle of a write.
fn model(device: &Device) -> Sequential {
    let mut m = Sequential::new(device, [FEATURES])
        .seed(5)
        .dense(1024, Activation::Relu)
        .dense(1024, Activation::Relu)
        .dense(1, Activation::Sigmoid);
    m.compile(
        Optimizer::adam(1e-3),
        Loss::BinaryCrossEntropy,
        &[Metric::BinaryAccuracy],
    )
    .unwrap();
    m
}

fn batch(step: usize) -> (Vec<f32>, Vec<f32>) {
    let x: Vec<f32> = (0..BATCH * FEATURES)
        .map(|i| (((i + 7 * step) * 2654435761) % 1000) as f32 / 1000.0 - 0.5)
        .collect();
    let y: Vec<f32> = (0..BATCH)
        .map(|r| (x[r * FEATURES] > 0.0) as u8 as f32)
        .collect();
    (x, y)
}

/// The epoch the child finished saving last, as the child recorded it
/// after `save` returned (written atomically itself).
fn recorded(dir: &Path) -> Option<usize> {
    std::fs::read_to_string(dir.join("saved.txt"))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// The child: resume from the checkpoint if there is one, then train one
/// batch and checkpoint, forever.
fn child(dir: PathBuf) -> ! {
    let device = Device::auto().unwrap();
    let mut m = model(&device);
    let path = dir.join("model.safetensors");
    let mut epoch = if path.exists() {
        checkpoint::load(&mut m, &path).unwrap() + 1
    } else {
        1
    };
    loop {
        let (x, y) = batch(epoch);
        m.train_on_batch(&x, &y).unwrap();
        checkpoint::save(&m, &path, epoch).unwrap();
        let note = dir.join("saved.tmp");
        std::fs::write(&note, epoch.to_string()).unwrap();
        std::fs::rename(&note, dir.join("saved.txt")).unwrap();
        epoch += 1;
    }
}

#[test]
fn a_checkpoint_written_when_the_process_is_killed_still_loads_and_resumes() {
    if let Some(dir) = std::env::var_os(CHILD_DIR) {
        child(PathBuf::from(dir));
    }
    let dir = std::env::temp_dir().join(format!("kiln-crash-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("model.safetensors");
    let device = Device::auto().unwrap();
    let tmp = dir.join("model.safetensors.tmp");
    let mut last_loaded = 0;
    let mut killed_mid_write = 0;
    // The same training without kills: batch e at epoch e, one process.
    let mut uninterrupted = model(&device);
    let mut uninterrupted_epoch = 0;
    // Kills at different moments: while a checkpoint is being written (the
    // temporary file exists), or some milliseconds after a save.
    let moments = [None, Some(3u64), None, Some(17), None, None, Some(41), None];
    for (round, delay_ms) in moments.into_iter().enumerate() {
        let mut proc = Command::new(std::env::current_exe().unwrap())
            .args([TEST_NAME, "--exact", "--test-threads=1", "--nocapture"])
            .env(CHILD_DIR, &dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let want = last_loaded + 2;
        let start = Instant::now();
        while recorded(&dir).is_none_or(|e| e < want) {
            if let Some(status) = proc.try_wait().unwrap() {
                panic!("round {round}: the child exited by itself ({status})");
            }
            assert!(
                start.elapsed() < Duration::from_secs(300),
                "round {round}: the child saved nothing in 5 minutes"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        match delay_ms {
            Some(ms) => std::thread::sleep(Duration::from_millis(ms)),
            None => {
                let _ = std::fs::remove_file(&tmp);
                while !tmp.exists() && start.elapsed() < Duration::from_secs(300) {
                    std::thread::yield_now();
                }
            }
        }
        proc.kill().unwrap(); // SIGKILL on Unix: no destructor, no flush runs
        proc.wait().unwrap();
        killed_mid_write += usize::from(tmp.exists());

        let saved = recorded(&dir).unwrap();
        let mut m = model(&device);
        let epoch = checkpoint::load(&mut m, &path)
            .unwrap_or_else(|e| panic!("round {round}: the newest checkpoint must load: {e}"));
        // The file holds the last save that completed: the recorded one, or
        // the next if the kill fell between the save and its record.
        assert!(
            epoch == saved || epoch == saved + 1,
            "round {round}: checkpoint of epoch {epoch}, the child recorded {saved}"
        );
        assert!(epoch > last_loaded, "round {round}: training moved on");
        while uninterrupted_epoch < epoch {
            uninterrupted_epoch += 1;
            let (x, y) = batch(uninterrupted_epoch);
            uninterrupted.train_on_batch(&x, &y).unwrap();
        }
        for (name, want) in uninterrupted.weights().unwrap() {
            compare::assert_bit_identical(
                &format!("round {round}, epoch {epoch}: {name}"),
                &m.value(&name).unwrap(),
                &want,
            );
        }
        // It resumes: the restored model trains and predicts finite numbers.
        let (x, y) = batch(epoch + 1);
        m.train_on_batch(&x, &y).unwrap();
        let p = m.predict(&(&x[..], &[BATCH, FEATURES][..]), BATCH).unwrap();
        assert!(p
            .data()
            .iter()
            .all(|v| v.is_finite() && (0.0..=1.0).contains(v)));
        last_loaded = epoch;
    }
    assert!(
        killed_mid_write > 0,
        "no kill landed during a write, so the test proved nothing; make the model larger"
    );
    eprintln!(
        "{killed_mid_write} of {} kills landed while a checkpoint was being written",
        moments.len()
    );
    let _ = std::fs::remove_dir_all(&dir);
}
