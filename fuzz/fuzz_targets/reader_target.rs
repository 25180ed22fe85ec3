// Included by every target: the fuzz entry point for one `kiln::fuzz`
// reader, with its scratch folder and adapter kept across inputs.

macro_rules! reader_target {
    ($reader:ident) => {
        use std::cell::RefCell;

        use kiln::fuzz::{Harness, Reader};
        use libfuzzer_sys::fuzz_target;

        thread_local! {
            static HARNESS: RefCell<Harness> = RefCell::new(
                Harness::new(std::env::temp_dir().join(format!(
                    "kiln-fuzz-{}-{}",
                    stringify!($reader),
                    std::process::id()
                )))
                .expect("a scratch folder"),
            );
        }

        fuzz_target!(|data: &[u8]| {
            HARNESS.with(|h| {
                let _ = h.borrow_mut().run(Reader::$reader, data);
            });
        });
    };
}
