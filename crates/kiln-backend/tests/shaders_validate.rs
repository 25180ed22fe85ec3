//! Every handwritten WGSL module and the shared prelude of the generated ones
//! parse and validate with naga, and every file in shaders/ is used: a broken
//! shader fails `cargo test` even on a machine with no adapter. (Generated
//! kernels are validated where they are made: see the graph crate's tests.)

use kiln_backend::shaders::{file_names, prelude, ShaderId};

fn validate(name: &str, source: &str) {
    let module = naga::front::wgsl::parse_str(source)
        .unwrap_or_else(|e| panic!("{name} does not parse:\n{}", e.emit_to_string(source)));
    naga::valid::Validator::new(
        naga::valid::ValidationFlags::all(),
        naga::valid::Capabilities::default(),
    )
    .validate(&module)
    .unwrap_or_else(|e| panic!("{name} does not validate:\n{}", e.emit_to_string(source)));
}

#[test]
fn every_module_parses_and_validates() {
    for &id in ShaderId::ALL {
        validate(id.name(), &id.source());
    }
    validate("the generated kernels' prelude", &prelude());
}

#[test]
fn every_shader_file_is_compiled_in_and_used() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shaders");
    let mut used: Vec<&str> = ShaderId::ALL
        .iter()
        .flat_map(|id| id.files().iter().copied())
        .collect();
    used.extend(kiln_backend::codegen::PRELUDE);
    let compiled: Vec<&str> = file_names().collect();
    let mut count = 0;
    for entry in std::fs::read_dir(dir).expect("shaders/ exists") {
        let name = entry.unwrap().file_name().into_string().unwrap();
        if name.ends_with(".wgsl") {
            count += 1;
            assert!(
                compiled.contains(&name.as_str()),
                "shaders/{name} is not compiled in"
            );
            assert!(
                used.contains(&name.as_str()),
                "shaders/{name} is in no module"
            );
        }
    }
    assert_eq!(
        count,
        compiled.len(),
        "a compiled-in file is missing from shaders/"
    );
}
