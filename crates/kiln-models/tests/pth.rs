//! The `.pth` reader against a file torch.save wrote (tiny_state_dict.pth,
//! its tensors also given as safetensors), a legacy-format stream built
//! here byte by byte, and hostile files: truncated, corrupted, and pickles
//! asking for globals other than tensors'. Every failure is an error that
//! names the problem, never a panic.

use std::io::Write;
use std::path::{Path, PathBuf};

use kiln_models::StateDict;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures");

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("kiln-pth-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

fn write(name: &str, bytes: &[u8]) -> PathBuf {
    let p = scratch(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

fn error_of(path: &Path) -> String {
    let e = StateDict::read_pth(path).unwrap_err().to_string();
    assert!(
        e.contains(&path.display().to_string()),
        "{e} should name the file"
    );
    e
}

#[test]
fn torch_save_zip_matches_its_safetensors_copy() {
    let pth = StateDict::read_pth(Path::new(FIXTURES).join("tiny_state_dict.pth")).unwrap();
    let st = StateDict::read_safetensors(Path::new(FIXTURES).join("tiny_state_dict.safetensors"))
        .unwrap();
    let names: Vec<&String> = pth.tensors.keys().collect();
    assert_eq!(names.len(), 9);
    for (name, (shape, values)) in &pth.tensors {
        let (want_shape, want) = &st.tensors[name];
        assert_eq!(shape, want_shape, "{name}");
        assert_eq!(values, want, "{name}");
    }
    assert_eq!(pth.tensors["bn1.num_batches_tracked"], (vec![], vec![7.0]));
    // Content decides the format: read() takes either.
    assert_eq!(
        StateDict::read(Path::new(FIXTURES).join("tiny_state_dict.pth")).unwrap(),
        pth
    );
}

/// A legacy (pre-zip) torch.save stream of one state dict: `w` a 2×2
/// tensor viewing storage "0" transposed (stride (1, 2)), `n` an int64
/// scalar on storage "1".
fn legacy() -> Vec<u8> {
    let floats: Vec<u8> = [1.0f32, 2.0, 3.0, 4.0]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    legacy_with("FloatStorage", &floats)
}

/// [`legacy`] with `w`'s storage of type `storage` holding the 4 elements
/// `bytes`.
fn legacy_with(storage: &str, bytes: &[u8]) -> Vec<u8> {
    let mut b = Vec::new();
    // magic 0x1950a86a20f9469cfc6c as LONG1, protocol 1001, system info {}.
    b.extend(b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19.");
    b.extend(b"\x80\x02M\xe9\x03.");
    b.extend(b"\x80\x02}q\x00.");
    b.extend(b"\x80\x02ccollections\nOrderedDict\nq\x00)Rq\x01(");
    b.extend(b"X\x01\x00\x00\x00wctorch._utils\n_rebuild_tensor_v2\nq\x02(");
    b.extend(b"(X\x07\x00\x00\x00storagectorch\n");
    b.extend(storage.as_bytes());
    b.extend(b"\nX\x01\x00\x00\x000X\x03\x00\x00\x00cpuK\x04NtQ");
    b.extend(b"K\x00K\x02K\x02\x86K\x01K\x02\x86\x89h\x00)RtR");
    b.extend(b"X\x01\x00\x00\x00nh\x02(");
    b.extend(b"(X\x07\x00\x00\x00storagectorch\nLongStorage\nX\x01\x00\x00\x001X\x03\x00\x00\x00cpuK\x01NtQ");
    b.extend(b"K\x00)))\x89h\x00)RtR");
    b.extend(b"u.");
    b.extend(b"\x80\x02]q\x00(X\x01\x00\x00\x000X\x01\x00\x00\x001e.");
    b.extend(4u64.to_le_bytes());
    b.extend(bytes);
    b.extend(1u64.to_le_bytes());
    b.extend(42i64.to_le_bytes());
    b
}

#[test]
fn legacy_streams_and_strided_views() {
    let p = write("legacy.pth", &legacy());
    let sd = StateDict::read_pth(&p).unwrap();
    // Storage [1, 2, 3, 4] seen with stride (1, 2): rows [1, 3] and [2, 4].
    assert_eq!(sd.tensors["w"], (vec![2, 2], vec![1.0, 3.0, 2.0, 4.0]));
    assert_eq!(sd.tensors["n"], (vec![], vec![42.0]));
    // Cut before the last storage's bytes.
    let bytes = legacy();
    let cut = write("legacy-cut.pth", &bytes[..bytes.len() - 4]);
    assert!(error_of(&cut).contains("truncated"));
    // A view of 10¹² elements over 4 (strides of 0) is refused, not allocated.
    let huge = legacy()
        .windows(12)
        .position(|w| w == b"K\x00K\x02K\x02\x86K\x01K\x02\x86")
        .map(|at| {
            let mut b = legacy();
            b.splice(
                at..at + 12,
                b"K\x00J\x40\x42\x0f\x00J\x40\x42\x0f\x00\x86K\x00K\x00\x86"
                    .iter()
                    .copied(),
            );
            b
        })
        .unwrap();
    let p = write("legacy-huge.pth", &huge);
    let e = error_of(&p);
    assert!(
        e.contains("claims 1000000000000 elements") && e.contains("holds 4"),
        "{e}"
    );
}

/// Half-precision storages, subnormals included: 0x0003 is 3·2⁻²⁴, 0x0200
/// is 2⁻¹⁵, 0x3c00 is 1, 0xc000 is −2 (IEEE 754 binary16).
#[test]
fn half_storages_convert_exactly_subnormals_included() {
    let halves: Vec<u8> = [0x0003u16, 0x0200, 0x3c00, 0xc000]
        .iter()
        .flat_map(|h| h.to_le_bytes())
        .collect();
    let p = write("legacy-half.pth", &legacy_with("HalfStorage", &halves));
    let sd = StateDict::read_pth(&p).unwrap();
    let want = [3.0 * 2f32.powi(-24), 2f32.powi(-15), 1.0, -2.0];
    // Stride (1, 2): rows [e0, e2] and [e1, e3].
    assert_eq!(
        sd.tensors["w"],
        (vec![2, 2], vec![want[0], want[2], want[1], want[3]])
    );
}

/// A zip archive of `members` (stored), as torch.save lays one out.
fn zip_of(members: &[(&str, &[u8])]) -> Vec<u8> {
    let mut buf = std::io::Cursor::new(Vec::new());
    {
        let mut z = zip::ZipWriter::new(&mut buf);
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored);
        for (name, data) in members {
            z.start_file(*name, opts).unwrap();
            z.write_all(data).unwrap();
        }
        z.finish().unwrap();
    }
    buf.into_inner()
}

#[test]
fn hostile_and_broken_files_are_refused_by_name() {
    // A pickle asking for os.system, alone and inside a torch.save archive.
    let evil = b"\x80\x02cos\nsystem\nq\x00X\x02\x00\x00\x00lsq\x01\x85q\x02Rq\x03.";
    let p = write("evil.pth", evil);
    assert!(error_of(&p).contains("refused global os.system"));
    let p = write("evil-zip.pth", &zip_of(&[("x/data.pkl", evil)]));
    assert!(error_of(&p).contains("refused global os.system"));
    // STACK_GLOBAL naming builtins.eval.
    let evil2 = b"\x80\x04\x8c\x08builtins\x8c\x04eval\x93.";
    let p = write("evil2.pth", &zip_of(&[("x/data.pkl", evil2)]));
    assert!(error_of(&p).contains("refused global builtins.eval"));

    let good = std::fs::read(Path::new(FIXTURES).join("tiny_state_dict.pth")).unwrap();
    // Truncated anywhere: the archive's directory, or inside a member.
    for cut in [good.len() / 2, good.len() - 30, 10] {
        let p = write(&format!("cut{cut}.pth"), &good[..cut]);
        let e = error_of(&p);
        assert!(
            e.contains("zip") || e.contains("truncated") || e.contains("corrupt"),
            "{e}"
        );
    }
    // A pickle cut short, and one with an opcode kiln does not know.
    let pkl = {
        let mut z = zip::ZipArchive::new(std::io::Cursor::new(&good)).unwrap();
        let mut f = z.by_name("tiny_state_dict/data.pkl").unwrap();
        let mut v = Vec::new();
        std::io::Read::read_to_end(&mut f, &mut v).unwrap();
        v
    };
    let p = write(
        "short-pkl.pth",
        &zip_of(&[("x/data.pkl", &pkl[..pkl.len() / 2])]),
    );
    assert!(error_of(&p).contains("truncated"));
    let p = write("bad-op.pth", &zip_of(&[("x/data.pkl", b"\x80\x02\xff.")]));
    assert!(error_of(&p).contains("unsupported pickle opcode 0xff"));
    // A storage member missing, and a view reaching past its storage.
    let p = write("no-storage.pth", &zip_of(&[("x/data.pkl", &pkl)]));
    assert!(error_of(&p).contains("member x/data/0"));
    let p = write(
        "small-storage.pth",
        &zip_of(&[("x/data.pkl", &pkl), ("x/data/0", &[0u8; 8])]),
    );
    assert!(error_of(&p).contains("reaches past its storage"));
    // Not a PyTorch file at all.
    let p = write("text.pth", b"hello");
    assert!(error_of(&p).contains("not a PyTorch file"));
    // A safetensors file that lies about its sizes.
    let p = write("lying.safetensors", b"\x40\x00\x00\x00\x00\x00\x00\x00{\"w\":{\"dtype\":\"F32\",\"shape\":[1000],\"data_offsets\":[0,4000]}}      ");
    assert!(StateDict::read_safetensors(&p).is_err());
}

/// `bytes` with every zip header's uncompressed size of `member` set to
/// `size`: the local file header (offset 22) and the central directory's
/// (offset 24), found by their signatures and the name after them.
fn declare_size(mut bytes: Vec<u8>, member: &str, size: u32) -> Vec<u8> {
    let mut patched = 0;
    for (sig, size_at, name_at) in [(b"PK\x03\x04", 22, 30), (b"PK\x01\x02", 24, 46)] {
        let starts: Vec<usize> = (0..bytes.len().saturating_sub(name_at))
            .filter(|&i| &bytes[i..i + 4] == sig)
            .collect();
        for i in starts {
            let len_at = if name_at == 30 { 26 } else { 28 };
            let len = u16::from_le_bytes([bytes[i + len_at], bytes[i + len_at + 1]]) as usize;
            if bytes.get(i + name_at..i + name_at + len) == Some(member.as_bytes()) {
                bytes[i + size_at..i + size_at + 4].copy_from_slice(&size.to_le_bytes());
                patched += 1;
            }
        }
    }
    assert_eq!(patched, 2, "{member}: one local and one central header");
    bytes
}

#[test]
fn a_member_that_inflates_past_its_declared_size_is_refused() {
    let original = std::fs::read(Path::new(FIXTURES).join("tiny_state_dict.pth")).unwrap();
    let archive = zip::ZipArchive::new(std::io::Cursor::new(original.as_slice())).unwrap();
    let pkl = archive
        .file_names()
        .find(|n| n.ends_with("data.pkl"))
        .unwrap()
        .to_string();
    let path = write("declared_too_small.pth", &declare_size(original, &pkl, 10));
    let e = error_of(&path);
    assert!(
        e.contains("inflates past the 10 bytes its header declares"),
        "{e}"
    );
}
