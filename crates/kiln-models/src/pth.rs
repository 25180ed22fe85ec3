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

use crate::error::{ModelError, Result};
use crate::module::StateDict;

/// A storage's element type, from its `torch.*Storage` class.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Elem {
    F32,
    F64,
    F16,
    BF16,
    I64,
    I32,
    I16,
    I8,
    U8,
    Bool,
}

impl Elem {
    fn from_storage(name: &str) -> Option<Self> {
        Some(match name {
            "FloatStorage" => Elem::F32,
            "DoubleStorage" => Elem::F64,
            "HalfStorage" => Elem::F16,
            "BFloat16Storage" => Elem::BF16,
            "LongStorage" => Elem::I64,
            "IntStorage" => Elem::I32,
            "ShortStorage" => Elem::I16,
            "CharStorage" => Elem::I8,
            "ByteStorage" => Elem::U8,
            "BoolStorage" => Elem::Bool,
            _ => return None,
        })
    }

    fn size(self) -> usize {
        match self {
            Elem::F64 | Elem::I64 => 8,
            Elem::F32 | Elem::I32 => 4,
            Elem::F16 | Elem::BF16 | Elem::I16 => 2,
            Elem::I8 | Elem::U8 | Elem::Bool => 1,
        }
    }

    /// Element `i` of `bytes` (little-endian) as f32.
    fn read(self, bytes: &[u8], i: usize) -> f32 {
        let b = &bytes[i * self.size()..(i + 1) * self.size()];
        match self {
            Elem::F32 => f32::from_le_bytes([b[0], b[1], b[2], b[3]]),
            Elem::F64 => f64::from_le_bytes(b.try_into().expect("8 bytes")) as f32,
            Elem::F16 => half_to_f32(u16::from_le_bytes([b[0], b[1]])),
            Elem::BF16 => f32::from_bits((u16::from_le_bytes([b[0], b[1]]) as u32) << 16),
            Elem::I64 => i64::from_le_bytes(b.try_into().expect("8 bytes")) as f32,
            Elem::I32 => i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f32,
            Elem::I16 => i16::from_le_bytes([b[0], b[1]]) as f32,
            Elem::I8 => b[0] as i8 as f32,
            Elem::U8 | Elem::Bool => b[0] as f32,
        }
    }
}

/// IEEE half precision to f32.
fn half_to_f32(h: u16) -> f32 {
    let sign = ((h >> 15) as u32) << 31;
    let exp = ((h >> 10) & 0x1f) as u32;
    let frac = (h & 0x3ff) as u32;
    let bits = match (exp, frac) {
        (0, 0) => sign,
        (0, f) => {
            // Subnormal: normalise.
            let shift = f.leading_zeros() - 21;
            sign | ((113 - shift) << 23) | ((f << (shift + 1)) & 0x3ff) << 13
        }
        (31, f) => sign | 0x7f80_0000 | (f << 13),
        (e, f) => sign | ((e + 112) << 23) | (f << 13),
    };
    f32::from_bits(bits)
}

/// A value the pickle machine builds.
#[derive(Clone, Debug)]
#[allow(dead_code)] // some payloads are only shown, in error messages
enum Value {
    None,
    Bool(bool),
    Int(i64),
    /// An integer of more than 8 bytes, little-endian (the legacy magic).
    Long(Vec<u8>),
    Float(f64),
    Str(String),
    Bytes(Vec<u8>),
    Tuple(Vec<Value>),
    List(Vec<Value>),
    Dict(Vec<(Value, Value)>),
    /// An allowed global: `(module, name)`.
    Global(String, String),
    /// A storage named by a persistent id: its key and element type.
    Storage {
        key: String,
        elem: Elem,
    },
    Tensor(Tensor),
    Mark,
}

#[derive(Clone, Debug)]
struct Tensor {
    key: String,
    elem: Elem,
    offset: usize,
    size: Vec<usize>,
    stride: Vec<usize>,
}

/// The globals a state dict needs; every other one is refused.
fn allowed(module: &str, name: &str) -> bool {
    match module {
        "collections" => name == "OrderedDict",
        "torch._utils" => matches!(name, "_rebuild_tensor_v2" | "_rebuild_parameter"),
        "torch" => Elem::from_storage(name).is_some(),
        _ => false,
    }
}

fn bad(detail: impl Into<String>) -> ModelError {
    ModelError::Invalid(detail.into())
}

/// The restricted unpickler over `data`, from `pos`.
struct Machine<'a> {
    data: &'a [u8],
    pos: usize,
    stack: Vec<Value>,
    memo: BTreeMap<u32, Value>,
}

impl<'a> Machine<'a> {
    fn new(data: &'a [u8], pos: usize) -> Self {
        Self {
            data,
            pos,
            stack: Vec::new(),
            memo: BTreeMap::new(),
        }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.data.len());
        let Some(end) = end else {
            return Err(bad(format!(
                "the pickle is truncated: {n} bytes wanted at offset {} of {}",
                self.pos,
                self.data.len()
            )));
        };
        let s = &self.data[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }

    fn u32(&mut self) -> Result<u32> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn line(&mut self) -> Result<String> {
        let rest = &self.data[self.pos..];
        let end = rest
            .iter()
            .position(|&b| b == b'\n')
            .ok_or_else(|| bad("the pickle is truncated inside a GLOBAL"))?;
        let s = String::from_utf8_lossy(&rest[..end]).into_owned();
        self.pos += end + 1;
        Ok(s)
    }

    fn pop(&mut self) -> Result<Value> {
        self.stack
            .pop()
            .ok_or_else(|| bad("malformed pickle: the stack is empty"))
    }

    /// Stores the top of the stack as memo `k` (for the opcode `op`).
    fn memoize(&mut self, k: u32, op: &str) -> Result<()> {
        let top = self
            .stack
            .last()
            .cloned()
            .ok_or_else(|| bad(format!("{op} on an empty stack")))?;
        self.memo.insert(k, top);
        Ok(())
    }

    /// The values pushed since the last MARK, which is removed.
    fn pop_mark(&mut self) -> Result<Vec<Value>> {
        let at = self
            .stack
            .iter()
            .rposition(|v| matches!(v, Value::Mark))
            .ok_or_else(|| bad("malformed pickle: no MARK"))?;
        let items = self.stack.split_off(at + 1);
        self.stack.pop();
        Ok(items)
    }

    fn string(&mut self, n: usize) -> Result<Value> {
        let b = self.take(n)?;
        Ok(Value::Str(String::from_utf8_lossy(b).into_owned()))
    }

    fn global(&mut self, module: String, name: String) -> Result<Value> {
        if !allowed(&module, &name) {
            return Err(bad(format!(
                "refused global {module}.{name}: a .pth may only build tensors and ordered dicts"
            )));
        }
        Ok(Value::Global(module, name))
    }

    /// Runs until STOP; `persistent` turns a persistent id into a value.
    fn run(&mut self, persistent: &dyn Fn(Value) -> Result<Value>) -> Result<Value> {
        loop {
            let op = self.u8()?;
            match op {
                0x80 => {
                    self.u8()?; // PROTO
                }
                0x95 => {
                    self.take(8)?; // FRAME
                }
                b'}' => self.stack.push(Value::Dict(Vec::new())),
                b']' => self.stack.push(Value::List(Vec::new())),
                b')' => self.stack.push(Value::Tuple(Vec::new())),
                b'(' => self.stack.push(Value::Mark),
                b'N' => self.stack.push(Value::None),
                0x88 => self.stack.push(Value::Bool(true)),
                0x89 => self.stack.push(Value::Bool(false)),
                b'J' => {
                    let v = self.u32()? as i32;
                    self.stack.push(Value::Int(v as i64));
                }
                b'K' => {
                    let v = self.u8()?;
                    self.stack.push(Value::Int(v as i64));
                }
                b'M' => {
                    let b = self.take(2)?;
                    self.stack
                        .push(Value::Int(u16::from_le_bytes([b[0], b[1]]) as i64));
                }
                0x8a => {
                    let n = self.u8()? as usize;
                    let b = self.take(n)?;
                    if n > 8 {
                        self.stack.push(Value::Long(b.to_vec()));
                        continue;
                    }
                    let mut v: i64 = 0;
                    for (i, &byte) in b.iter().enumerate() {
                        v |= (byte as i64) << (8 * i);
                    }
                    if n > 0 && n < 8 && b[n - 1] & 0x80 != 0 {
                        v -= 1i64 << (8 * n);
                    }
                    self.stack.push(Value::Int(v));
                }
                b'G' => {
                    let b = self.take(8)?;
                    self.stack.push(Value::Float(f64::from_be_bytes(
                        b.try_into().expect("8 bytes"),
                    )));
                }
                b'X' => {
                    let n = self.u32()? as usize;
                    let v = self.string(n)?;
                    self.stack.push(v);
                }
                0x8c | b'U' => {
                    let n = self.u8()? as usize;
                    let v = self.string(n)?;
                    self.stack.push(v);
                }
                b'T' => {
                    let n = self.u32()? as usize;
                    let v = self.string(n)?;
                    self.stack.push(v);
                }
                b'C' => {
                    let n = self.u8()? as usize;
                    let b = self.take(n)?.to_vec();
                    self.stack.push(Value::Bytes(b));
                }
                b'B' => {
                    let n = self.u32()? as usize;
                    let b = self.take(n)?.to_vec();
                    self.stack.push(Value::Bytes(b));
                }
                b'q' => {
                    let k = self.u8()? as u32;
                    self.memoize(k, "BINPUT")?;
                }
                b'r' => {
                    let k = self.u32()?;
                    self.memoize(k, "LONG_BINPUT")?;
                }
                0x94 => {
                    let k = self.memo.len() as u32;
                    self.memoize(k, "MEMOIZE")?;
                }
                b'h' | b'j' => {
                    let k = if op == b'h' {
                        self.u8()? as u32
                    } else {
                        self.u32()?
                    };
                    let v = self.memo.get(&k).cloned().ok_or_else(|| {
                        bad(format!("malformed pickle: memo {k} was never stored"))
                    })?;
                    self.stack.push(v);
                }
                b'c' => {
                    let module = self.line()?;
                    let name = self.line()?;
                    let g = self.global(module, name)?;
                    self.stack.push(g);
                }
                0x93 => {
                    let name = self.pop()?;
                    let module = self.pop()?;
                    let (Value::Str(module), Value::Str(name)) = (module, name) else {
                        return Err(bad("malformed pickle: STACK_GLOBAL needs two strings"));
                    };
                    let g = self.global(module, name)?;
                    self.stack.push(g);
                }
                b't' => {
                    let items = self.pop_mark()?;
                    self.stack.push(Value::Tuple(items));
                }
                0x85..=0x87 => {
                    let n = (op - 0x84) as usize;
                    if self.stack.len() < n {
                        return Err(bad("malformed pickle: a tuple of missing values"));
                    }
                    let items = self.stack.split_off(self.stack.len() - n);
                    self.stack.push(Value::Tuple(items));
                }
                b'a' => {
                    let v = self.pop()?;
                    match self.stack.last_mut() {
                        Some(Value::List(l)) => l.push(v),
                        _ => return Err(bad("malformed pickle: APPEND to a non-list")),
                    }
                }
                b'e' => {
                    let items = self.pop_mark()?;
                    match self.stack.last_mut() {
                        Some(Value::List(l)) => l.extend(items),
                        _ => return Err(bad("malformed pickle: APPENDS to a non-list")),
                    }
                }
                b's' => {
                    let v = self.pop()?;
                    let k = self.pop()?;
                    match self.stack.last_mut() {
                        Some(Value::Dict(d)) => d.push((k, v)),
                        _ => return Err(bad("malformed pickle: SETITEM on a non-dict")),
                    }
                }
                b'u' => {
                    let items = self.pop_mark()?;
                    if items.len() % 2 != 0 {
                        return Err(bad("malformed pickle: SETITEMS with an odd count"));
                    }
                    let mut pairs = Vec::new();
                    let mut it = items.into_iter();
                    while let (Some(k), Some(v)) = (it.next(), it.next()) {
                        pairs.push((k, v));
                    }
                    match self.stack.last_mut() {
                        Some(Value::Dict(d)) => d.extend(pairs),
                        _ => return Err(bad("malformed pickle: SETITEMS on a non-dict")),
                    }
                }
                b'Q' => {
                    let pid = self.pop()?;
                    let v = persistent(pid)?;
                    self.stack.push(v);
                }
                b'R' => {
                    let args = self.pop()?;
                    let f = self.pop()?;
                    let v = call(f, args)?;
                    self.stack.push(v);
                }
                0x81 => {
                    let args = self.pop()?;
                    let cls = self.pop()?;
                    let v = call(cls, args)?;
                    self.stack.push(v);
                }
                b'b' => {
                    // BUILD: an object's state. A state dict's attributes
                    // (its `_metadata`) are not needed: dropped.
                    self.pop()?;
                    if self.stack.is_empty() {
                        return Err(bad("malformed pickle: BUILD on an empty stack"));
                    }
                }
                b'.' => return self.pop(),
                other => {
                    return Err(bad(format!(
                        "unsupported pickle opcode 0x{other:02x} at offset {}",
                        self.pos - 1
                    )))
                }
            }
        }
    }
}

fn int(v: &Value, what: &str) -> Result<usize> {
    match v {
        Value::Int(i) if *i >= 0 => Ok(*i as usize),
        other => Err(bad(format!(
            "{what}: expected a non-negative integer, got {other:?}"
        ))),
    }
}

fn ints(v: &Value, what: &str) -> Result<Vec<usize>> {
    match v {
        Value::Tuple(items) | Value::List(items) => items.iter().map(|i| int(i, what)).collect(),
        other => Err(bad(format!(
            "{what}: expected a tuple of integers, got {other:?}"
        ))),
    }
}

/// REDUCE and NEWOBJ: the few calls a state dict makes.
fn call(f: Value, args: Value) -> Result<Value> {
    let Value::Global(module, name) = f else {
        return Err(bad(format!(
            "malformed pickle: calling {f:?}, not a global"
        )));
    };
    let Value::Tuple(args) = args else {
        return Err(bad("malformed pickle: call arguments are not a tuple"));
    };
    match (module.as_str(), name.as_str()) {
        ("collections", "OrderedDict") => Ok(Value::Dict(Vec::new())),
        ("torch._utils", "_rebuild_tensor_v2") => {
            if args.len() < 4 {
                return Err(bad(
                    "_rebuild_tensor_v2 needs storage, offset, size and stride",
                ));
            }
            let Value::Storage { key, elem } = &args[0] else {
                return Err(bad(format!(
                    "_rebuild_tensor_v2 on {:?}, not a storage",
                    args[0]
                )));
            };
            let size = ints(&args[2], "tensor size")?;
            let stride = ints(&args[3], "tensor stride")?;
            if size.len() != stride.len() {
                return Err(bad(format!(
                    "tensor size {size:?} and stride {stride:?} differ in rank"
                )));
            }
            Ok(Value::Tensor(Tensor {
                key: key.clone(),
                elem: *elem,
                offset: int(&args[1], "storage offset")?,
                size,
                stride,
            }))
        }
        ("torch._utils", "_rebuild_parameter") => match args.into_iter().next() {
            Some(t @ Value::Tensor(_)) => Ok(t),
            other => Err(bad(format!(
                "_rebuild_parameter of {other:?}, not a tensor"
            ))),
        },
        _ => Err(bad(format!("{module}.{name} cannot be called"))),
    }
}

/// The storage a persistent id names: `('storage', torch.FloatStorage, key,
/// location, numel[, view])`.
fn storage_of(pid: Value) -> Result<Value> {
    let Value::Tuple(items) = pid else {
        return Err(bad(format!("a persistent id {pid:?} is not a tuple")));
    };
    match items.as_slice() {
        [Value::Str(kind), Value::Global(_, class), key, ..] if kind == "storage" => {
            let elem = Elem::from_storage(class)
                .ok_or_else(|| bad(format!("storage type {class} is not supported")))?;
            let key = match key {
                Value::Str(s) => s.clone(),
                Value::Int(i) => i.to_string(),
                other => return Err(bad(format!("storage key {other:?}"))),
            };
            Ok(Value::Storage { key, elem })
        }
        other => Err(bad(format!("a persistent id {other:?} names no storage"))),
    }
}

/// The state dict a top-level pickled value holds, its tensors' bytes
/// looked up by storage key.
fn collect(top: Value, storage: &dyn Fn(&str) -> Result<Vec<u8>>) -> Result<StateDict> {
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
    let mut out = StateDict::default();
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
        out.tensors.insert(name, (t.size.clone(), values));
    }
    Ok(out)
}

/// Reads a `.pth` state dict from its bytes (either format).
pub(crate) fn read_pth_bytes(bytes: &[u8]) -> Result<StateDict> {
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

fn read_zip(bytes: &[u8]) -> Result<StateDict> {
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
        let mut out = Vec::new();
        f.read_to_end(&mut out)
            .map_err(|e| bad(format!("member {name} is corrupt or truncated: {e}")))?;
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
fn read_legacy(bytes: &[u8]) -> Result<StateDict> {
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
