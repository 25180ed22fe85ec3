//! PyTorch `.pth` state dicts read in Rust, without Python and without
//! running anything a file asks for. Both of `torch.save`'s formats: the zip
//! archive (a pickle `data.pkl` and one member per storage under
//! `<name>/data/`) and the legacy stream (pickles of a magic number, a
//! protocol, system information, the object and the storage keys, then
//! each storage's bytes).
//!
//! The pickle is read by a small stack machine that knows the opcodes a
//! state dict uses and builds only values: the one callable it honours is
//! `torch._utils._rebuild_tensor_v2` (and `_rebuild_parameter`) on
//! storages of the `torch.*Storage` types, plus `collections.OrderedDict`.
//! Any other global is refused by name: a `.pth` cannot run code here.

use std::collections::BTreeMap;
use std::io::Read;

use crate::error::Result;

mod unpickle;

use unpickle::{bad, storage_of, Elem, Machine, Value};

/// A state dict's tensors: (shape, values) by name.
pub(crate) type Tensors = BTreeMap<String, (Vec<usize>, Vec<f32>)>;

/// The state dict a top-level pickled value holds, its tensors' bytes
/// looked up by storage key.
fn collect(top: Value, storage: &dyn Fn(&str) -> Result<Vec<u8>>) -> Result<Tensors> {
    let Value::Dict(pairs) = top else {
        return Err(bad(format!(
            "the file holds {}, not a state dict (a dict of tensors)",
            match top {
                Value::List(_) => "a list",
                Value::Tensor(_) => "a tensor",
                _ => "another object",
            }
        )));
    };
    let mut out = Tensors::new();
    let mut cache: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    for (k, v) in pairs {
        let Value::Str(name) = k else {
            return Err(bad(format!("a state dict key {k:?} is not a string")));
        };
        let Value::Tensor(t) = v else {
            // Nested dicts or non-tensor entries (optimizer state, epochs)
            // are not weights.
            continue;
        };
        if !cache.contains_key(&t.key) {
            cache.insert(t.key.clone(), storage(&t.key)?);
        }
        let bytes = &cache[&t.key];
        let available = bytes.len() / t.elem.size();
        let numel = t
            .size
            .iter()
            .try_fold(1usize, |a, &d| a.checked_mul(d))
            .ok_or_else(|| bad(format!("tensor {name:?}: size {:?} overflows", t.size)))?;
        // The last element the view reaches must be inside the storage.
        let reach = t
            .size
            .iter()
            .zip(&t.stride)
            .try_fold(t.offset, |a, (&d, &s)| {
                a.checked_add(d.saturating_sub(1).checked_mul(s)?)
            });
        if numel > 0 && reach.is_none_or(|r| r >= available) {
            return Err(bad(format!(
                "tensor {name:?} ({:?}, stride {:?}, offset {}) reaches past its storage of {available} elements",
                t.size, t.stride, t.offset
            )));
        }
        // A view repeating elements (stride 0) could claim any size: a
        // weight holds no more elements than its storage.
        if numel > available.max(1) {
            return Err(bad(format!(
                "tensor {name:?} claims {numel} elements ({:?}); its storage holds {available}",
                t.size
            )));
        }
        let mut values = Vec::with_capacity(numel);
        let mut index = vec![0usize; t.size.len()];
        for _ in 0..numel {
            let at = t.offset
                + index
                    .iter()
                    .zip(&t.stride)
                    .map(|(i, s)| i * s)
                    .sum::<usize>();
            values.push(t.elem.read(bytes, at));
            for d in (0..index.len()).rev() {
                index[d] += 1;
                if index[d] < t.size[d] {
                    break;
                }
                index[d] = 0;
            }
        }
        out.insert(name, (t.size.clone(), values));
    }
    Ok(out)
}

/// Reads a `.pth` state dict from its bytes (either format).
pub(crate) fn read_pth_bytes(bytes: &[u8]) -> Result<Tensors> {
    if bytes.starts_with(b"PK\x03\x04") {
        read_zip(bytes)
    } else if bytes.first() == Some(&0x80) {
        read_legacy(bytes)
    } else {
        Err(bad(
            "not a PyTorch file: neither a zip archive nor a pickle stream",
        ))
    }
}

fn read_zip(bytes: &[u8]) -> Result<Tensors> {
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes))
        .map_err(|e| bad(format!("a corrupt zip archive: {e}")))?;
    let names: Vec<String> = archive.file_names().map(str::to_string).collect();
    let pkl = names
        .iter()
        .find(|n| n.ends_with("data.pkl"))
        .ok_or_else(|| bad("the archive has no data.pkl: not a torch.save file"))?
        .clone();
    let prefix = pkl.trim_end_matches("data.pkl").to_string();
    if let Some(order) = names.iter().find(|n| **n == format!("{prefix}byteorder")) {
        let mut s = String::new();
        archive
            .by_name(order)
            .map_err(|e| bad(format!("{order}: {e}")))?
            .take(16)
            .read_to_string(&mut s)
            .map_err(|e| bad(format!("{order}: {e}")))?;
        if s.trim() != "little" {
            return Err(bad(format!(
                "storages are {s:?}-endian; kiln reads little-endian"
            )));
        }
    }
    let mut member = |name: &str| -> Result<Vec<u8>> {
        let mut f = archive
            .by_name(name)
            .map_err(|e| bad(format!("member {name}: {e}")))?;
        // Never more than the header declares: a member whose data inflates
        // past its declared size is a zip bomb or a corrupt archive, found
        // before it fills memory.
        let declared = f.size();
        let mut out = Vec::new();
        f.by_ref()
            .take(declared.saturating_add(1))
            .read_to_end(&mut out)
            .map_err(|e| bad(format!("member {name} is corrupt or truncated: {e}")))?;
        if out.len() as u64 > declared {
            return Err(bad(format!(
                "member {name} inflates past the {declared} bytes its header declares: a zip \
                 bomb or a corrupt archive"
            )));
        }
        Ok(out)
    };
    let pickle = member(&pkl)?;
    let top = Machine::new(&pickle, 0).run(&storage_of)?;
    let storages = std::cell::RefCell::new(member);
    collect(top, &|key| {
        (storages.borrow_mut())(&format!("{prefix}data/{key}"))
    })
}

/// The legacy (pre-1.6) stream: magic, protocol, system info, the object,
/// the storage keys, then every storage as an 8-byte element count and its
/// bytes, in the keys' order.
fn read_legacy(bytes: &[u8]) -> Result<Tensors> {
    // 0x1950a86a20f9469cfc6c, little-endian.
    const MAGIC: [u8; 10] = [0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19];
    let no_pid = |_: Value| -> Result<Value> { Err(bad("unexpected persistent id in a header")) };
    let mut m = Machine::new(bytes, 0);
    let magic = m.run(&no_pid)?;
    if !matches!(&magic, Value::Long(b) if b[..] == MAGIC) {
        return Err(bad(
            "not a PyTorch file: the legacy magic number is missing",
        ));
    }
    let pos = m.pos;
    let mut m = Machine::new(bytes, pos);
    m.run(&no_pid)?; // protocol version
    let pos = m.pos;
    let mut m = Machine::new(bytes, pos);
    m.run(&no_pid)?; // system info
    let pos = m.pos;
    let mut storages: BTreeMap<String, Elem> = BTreeMap::new();
    let mut m = Machine::new(bytes, pos);
    let record = std::cell::RefCell::new(&mut storages);
    let top = m.run(&|pid| {
        let v = storage_of(pid)?;
        if let Value::Storage { key, elem } = &v {
            record.borrow_mut().insert(key.clone(), *elem);
        }
        Ok(v)
    })?;
    let pos = m.pos;
    let mut m = Machine::new(bytes, pos);
    let keys = m.run(&no_pid)?;
    let Value::List(keys) = keys else {
        return Err(bad("the legacy file's storage key list is missing"));
    };
    let mut at = m.pos;
    let mut data: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    for k in keys {
        let Value::Str(key) = k else {
            return Err(bad(format!("storage key {k:?} is not a string")));
        };
        let elem = *storages
            .get(&key)
            .ok_or_else(|| bad(format!("storage {key} is listed but never used")))?;
        let count = bytes
            .get(at..at + 8)
            .ok_or_else(|| bad(format!("storage {key}: the file is truncated")))?;
        let n = u64::from_le_bytes(count.try_into().expect("8 bytes")) as usize;
        at += 8;
        let len = n
            .checked_mul(elem.size())
            .filter(|&l| at + l <= bytes.len())
            .ok_or_else(|| {
                bad(format!(
                    "storage {key} of {n} elements: the file is truncated"
                ))
            })?;
        data.insert(key, bytes[at..at + len].to_vec());
        at += len;
    }
    collect(top, &|key| {
        data.get(key)
            .cloned()
            .ok_or_else(|| bad(format!("storage {key} is missing from the file")))
    })
}
