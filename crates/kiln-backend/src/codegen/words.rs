//! The parameter words of a generated kernel. Each value the kernel needs
//! (a size, a stride, an offset, a scalar) gets a word of its own, named in
//! the source only by its position, so the source depends on the kernel's
//! structure and never on the values. The kernel reads every word once, at
//! the start of each invocation (`let P = load_words();`): on CPU adapters a
//! storage load costs as much as a data load, and the compiler may not hoist
//! them past stores by itself.

pub(crate) struct Words {
    values: Vec<u32>,
}

impl Words {
    pub fn new() -> Self {
        Self { values: Vec::new() }
    }

    /// A word holding `v`; returns its WGSL name.
    pub fn u(&mut self, v: usize) -> String {
        self.values.push(v as u32);
        format!("P.w{}", self.values.len() - 1)
    }

    /// A word holding the bits of `v`; returns an f32 WGSL expression.
    pub fn f(&mut self, v: f32) -> String {
        self.values.push(v.to_bits());
        format!("bitcast<f32>(P.w{})", self.values.len() - 1)
    }

    pub fn values(&self) -> Vec<u32> {
        if self.values.is_empty() {
            vec![0]
        } else {
            self.values.clone()
        }
    }

    /// The `Words` struct and the function that fills it from `params`.
    pub fn declare(&self) -> String {
        let n = self.values.len().max(1);
        let fields: Vec<String> = (0..n).map(|i| format!("w{i}: u32")).collect();
        let loads: Vec<String> = (0..n).map(|i| format!("params[{i}]")).collect();
        format!(
            "struct Words {{ {} }}\nfn load_words() -> Words {{ return Words({}); }}\n",
            fields.join(", "),
            loads.join(", ")
        )
    }
}
