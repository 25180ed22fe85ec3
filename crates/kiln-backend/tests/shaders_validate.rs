//! Every WGSL module kiln builds parses and validates with naga, and every file
//! in shaders/ belongs to some module: a broken shader fails `cargo test` even
//! on a machine with no adapter.

use kiln_backend::shaders::ShaderId;

#[test]
fn every_module_parses_and_validates() {
    for id in ShaderId::ALL {
        let source = id.source();
        let module = naga::front::wgsl::parse_str(&source).unwrap_or_else(|e| {
            panic!(
                "{} does not parse:\n{}",
                id.name(),
                e.emit_to_string(&source)
            )
        });
        naga::valid::Validator::new(
            naga::valid::ValidationFlags::all(),
            naga::valid::Capabilities::default(),
        )
        .validate(&module)
        .unwrap_or_else(|e| {
            panic!(
                "{} does not validate:\n{}",
                id.name(),
                e.emit_to_string(&source)
            )
        });
    }
}

#[test]
fn every_shader_file_is_part_of_a_module() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shaders");
    let used: Vec<&str> = ShaderId::ALL
        .iter()
        .flat_map(|id| id.files().iter().copied())
        .collect();
    let mut count = 0;
    for entry in std::fs::read_dir(dir).expect("shaders/ exists") {
        let name = entry.unwrap().file_name().into_string().unwrap();
        if name.ends_with(".wgsl") {
            count += 1;
            assert!(
                used.contains(&name.as_str()),
                "shaders/{name} is in no ShaderId module"
            );
        }
    }
    assert!(
        count >= 8,
        "expected the kernel files in shaders/, found {count}"
    );
}
