//! The register-block skeleton that the GEMM and convolution kernels share:
//! 8×8 invocations per workgroup (or lanes of subgroups), each keeping a
//! `rows × cols` block of outputs in `vec4` accumulators `acc{r}_{g}`. A
//! kernel writes its K loop between the skeleton's parts:
//!
//! 1. [`RegisterBlock::entry`] and [`RegisterBlock::origin`]: the block's
//!    first row and column, and the early return past the output;
//! 2. [`RegisterBlock::clamped_rows`]: each row, clamped into the matrix so
//!    loads never branch;
//! 3. [`RegisterBlock::accumulators`];
//! 4. the kernel's own loads and multiply-adds along K;
//! 5. [`RegisterBlock::store`]: each accumulator through the epilogue,
//!    where its row and column are inside the output.

/// The components of a `vec4` accumulator.
pub(crate) const LANES: [&str; 4] = ["x", "y", "z", "w"];

/// One invocation's block of outputs.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RegisterBlock {
    pub rows: usize,
    pub cols: usize,
    /// The lanes of a subgroup share their rows' loads: every lane stays
    /// to the end, since a broadcast from a lane that returned is
    /// undefined (their columns are clamped on load and skipped on store
    /// anyway).
    pub lanes: bool,
}

impl RegisterBlock {
    /// The entry point: 8×8 invocations, `lid.x` walking columns and
    /// `lid.y` rows. With lanes, `lid` is the lane within its subgroup and
    /// the subgroup's index, so that a subgroup's lanes share their rows
    /// whatever order the driver forms subgroups in (the builtins need a
    /// one-dimensional workgroup).
    pub fn entry(lanes: bool) -> &'static str {
        match lanes {
            true => "@compute @workgroup_size(64)\nfn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(subgroup_id) subgroup: u32, @builtin(subgroup_invocation_id) lane: u32) {\n    let lid = vec2<u32>(lane, subgroup);",
            false => "@compute @workgroup_size(8, 8, 1)\nfn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {",
        }
    }

    /// `row0` and `col0`, the block's first output row and column, and the
    /// return of invocations past `m` rows (or `n` columns).
    pub fn origin(&self, m: &str, n: &str) -> String {
        let past_columns = match self.lanes {
            true => String::new(),
            false => format!(" || col0 >= {n}"),
        };
        format!(
            "    let row0 = (wid.y * 8u + lid.y) * {}u;\n    let col0 = (wid.x * 8u + lid.x) * {}u;\n    if (row0 >= {m}{past_columns}) {{ return; }}",
            self.rows, self.cols
        )
    }

    /// `{prefix}{r}`, row r of the block clamped to the `m` rows, and with
    /// lanes `rs`, the row this lane loads for its subgroup.
    pub fn clamped_rows(&self, prefix: &str, m: &str) -> Vec<String> {
        let mut lines: Vec<String> = (0..self.rows)
            .map(|r| format!("    let {prefix}{r} = min(row0 + {r}u, {m} - 1u);"))
            .collect();
        if self.lanes {
            lines.push(format!("    let rs = min(row0 + lid.x, {m} - 1u);"));
        }
        lines
    }

    /// The accumulators, zeroed.
    pub fn accumulators(&self) -> Vec<String> {
        (0..self.rows)
            .flat_map(|r| {
                (0..self.cols / 4).map(move |g| format!("    var acc{r}_{g} = vec4<f32>(0.0);"))
            })
            .collect()
    }

    /// The accumulator of row r, column c of the block.
    pub fn accumulator(r: usize, c: usize) -> String {
        format!("acc{r}_{}.{}", c / 4, LANES[c % 4])
    }

    /// Row r, column c's value through the epilogue `epi(P, batch, row,
    /// column, value)`, where it is inside `[m, n]` (and `also` holds):
    /// `column` is the epilogue's column index of the block's column c.
    pub fn store(
        r: usize,
        c: usize,
        [m, n]: [&str; 2],
        also: &str,
        batch: &str,
        column: &str,
    ) -> String {
        format!(
            "    if (row0 + {r}u < {m} && col0 + {c}u < {n}{also}) {{ epi(P, {batch}, row0 + {r}u, {column}, {}); }}",
            Self::accumulator(r, c)
        )
    }
}
