//! The restricted unpickler of `.pth` files: a small stack machine that
//! knows the opcodes a state dict uses and builds only values. The one
//! callable it honours is `torch._utils._rebuild_tensor_v2` (and
//! `_rebuild_parameter`) on storages of the `torch.*Storage` types, plus
//! `collections.OrderedDict`; any other global is refused by name.

use std::collections::BTreeMap;

use crate::error::{ModelError, Result};

/// A storage's element type, from its `torch.*Storage` class.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Elem {
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
    pub(super) fn from_storage(name: &str) -> Option<Self> {
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

    pub(super) fn size(self) -> usize {
        match self {
            Elem::F64 | Elem::I64 => 8,
            Elem::F32 | Elem::I32 => 4,
            Elem::F16 | Elem::BF16 | Elem::I16 => 2,
            Elem::I8 | Elem::U8 | Elem::Bool => 1,
        }
    }

    /// Element `i` of `bytes` (little-endian) as f32.
    pub(super) fn read(self, bytes: &[u8], i: usize) -> f32 {
        let b = &bytes[i * self.size()..(i + 1) * self.size()];
        match self {
            Elem::F32 => f32::from_le_bytes([b[0], b[1], b[2], b[3]]),
            Elem::F64 => f64::from_le_bytes(b.try_into().expect("8 bytes")) as f32,
            Elem::F16 => half::f16::from_le_bytes([b[0], b[1]]).to_f32(),
            Elem::BF16 => f32::from_bits((u16::from_le_bytes([b[0], b[1]]) as u32) << 16),
            Elem::I64 => i64::from_le_bytes(b.try_into().expect("8 bytes")) as f32,
            Elem::I32 => i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f32,
            Elem::I16 => i16::from_le_bytes([b[0], b[1]]) as f32,
            Elem::I8 => b[0] as i8 as f32,
            Elem::U8 | Elem::Bool => b[0] as f32,
        }
    }
}

/// A value the pickle machine builds.
#[derive(Clone, Debug)]
#[allow(dead_code)] // some payloads are only shown, in error messages
pub(super) enum Value {
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
pub(super) struct Tensor {
    pub(super) key: String,
    pub(super) elem: Elem,
    pub(super) offset: usize,
    pub(super) size: Vec<usize>,
    pub(super) stride: Vec<usize>,
}

/// The globals a state dict needs; every other one is refused.
pub(super) fn allowed(module: &str, name: &str) -> bool {
    match module {
        "collections" => name == "OrderedDict",
        "torch._utils" => matches!(name, "_rebuild_tensor_v2" | "_rebuild_parameter"),
        "torch" => Elem::from_storage(name).is_some(),
        _ => false,
    }
}

pub(super) fn bad(detail: impl Into<String>) -> ModelError {
    ModelError::Weights(detail.into())
}

/// The restricted unpickler over `data`, from `pos`.
pub(super) struct Machine<'a> {
    data: &'a [u8],
    /// Where the next opcode is: where the pickle ended, after a run.
    pub(super) pos: usize,
    stack: Vec<Value>,
    memo: BTreeMap<u32, Value>,
}

impl<'a> Machine<'a> {
    pub(super) fn new(data: &'a [u8], pos: usize) -> Self {
        Self {
            data,
            pos,
            stack: Vec::new(),
            memo: BTreeMap::new(),
        }
    }

    pub(super) fn take(&mut self, n: usize) -> Result<&'a [u8]> {
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

    pub(super) fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }

    pub(super) fn u32(&mut self) -> Result<u32> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub(super) fn line(&mut self) -> Result<String> {
        let rest = &self.data[self.pos..];
        let end = rest
            .iter()
            .position(|&b| b == b'\n')
            .ok_or_else(|| bad("the pickle is truncated inside a GLOBAL"))?;
        let s = String::from_utf8_lossy(&rest[..end]).into_owned();
        self.pos += end + 1;
        Ok(s)
    }

    pub(super) fn pop(&mut self) -> Result<Value> {
        self.stack
            .pop()
            .ok_or_else(|| bad("malformed pickle: the stack is empty"))
    }

    /// Stores the top of the stack as memo `k` (for the opcode `op`).
    pub(super) fn memoize(&mut self, k: u32, op: &str) -> Result<()> {
        let top = self
            .stack
            .last()
            .cloned()
            .ok_or_else(|| bad(format!("{op} on an empty stack")))?;
        self.memo.insert(k, top);
        Ok(())
    }

    /// The values pushed since the last MARK, which is removed.
    pub(super) fn pop_mark(&mut self) -> Result<Vec<Value>> {
        let at = self
            .stack
            .iter()
            .rposition(|v| matches!(v, Value::Mark))
            .ok_or_else(|| bad("malformed pickle: no MARK"))?;
        let items = self.stack.split_off(at + 1);
        self.stack.pop();
        Ok(items)
    }

    pub(super) fn string(&mut self, n: usize) -> Result<Value> {
        let b = self.take(n)?;
        Ok(Value::Str(String::from_utf8_lossy(b).into_owned()))
    }

    pub(super) fn global(&mut self, module: String, name: String) -> Result<Value> {
        if !allowed(&module, &name) {
            return Err(bad(format!(
                "refused global {module}.{name}: a .pth may only build tensors and ordered dicts"
            )));
        }
        Ok(Value::Global(module, name))
    }

    /// Runs until STOP; `persistent` turns a persistent id into a value.
    pub(super) fn run(&mut self, persistent: &dyn Fn(Value) -> Result<Value>) -> Result<Value> {
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

pub(super) fn int(v: &Value, what: &str) -> Result<usize> {
    match v {
        Value::Int(i) if *i >= 0 => Ok(*i as usize),
        other => Err(bad(format!(
            "{what}: expected a non-negative integer, got {other:?}"
        ))),
    }
}

pub(super) fn ints(v: &Value, what: &str) -> Result<Vec<usize>> {
    match v {
        Value::Tuple(items) | Value::List(items) => items.iter().map(|i| int(i, what)).collect(),
        other => Err(bad(format!(
            "{what}: expected a tuple of integers, got {other:?}"
        ))),
    }
}

/// REDUCE and NEWOBJ: the few calls a state dict makes.
pub(super) fn call(f: Value, args: Value) -> Result<Value> {
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
pub(super) fn storage_of(pid: Value) -> Result<Value> {
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
