// Included by every target: the fuzz entry point for one `kiln::fuzz`
// reader, with its scratch folder and adapter kept across inputs (in a
// static, never dropped: wgpu's thread-locals are gone by then).

macro_rules! reader_target {
    ($reader:ident) => {
        use std::sync::{Mutex, OnceLock};

        use kiln::fuzz::{Harness, Reader};
        use libfuzzer_sys::fuzz_target;

        static HARNESS: OnceLock<Mutex<Harness>> = OnceLock::new();

        fuzz_target!(|data: &[u8]| {
            let harness = HARNESS.get_or_init(|| {
                let dir = std::env::temp_dir().join(format!(
                    "kiln-fuzz-{}-{}",
                    stringify!($reader),
                    std::process::id()
                ));
                Mutex::new(Harness::new(dir).expect("a scratch folder"))
            });
            let mut h = harness.lock().unwrap_or_else(|p| p.into_inner());
            let _ = h.run(Reader::$reader, data);
        });
    };
}
