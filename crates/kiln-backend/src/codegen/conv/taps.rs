//! The pieces of a convolution block's K steps: each row's offset and
//! value (one load per lane where a subgroup shares rows), windows of a
//! source row read once, unrolled taps, and the 8×8 multiply-adds.

use super::block::{COLS, ROWS};

/// For the input gradient: the output coordinate whose window reaches an
/// input pixel at (padded coordinate − tap offset) `t` along one axis, and
/// whether there is one (`t` non-negative, on the stride, inside the
/// output of size `out`).
pub(super) fn gather_tap(t: &str, stride: &str, out: &str, strided: bool) -> (String, String) {
    if strided {
        (
            format!("{t} / i32({stride})"),
            format!("{t} >= 0 && {t} % i32({stride}) == 0 && u32({t} / i32({stride})) < {out}"),
        )
    } else {
        (t.to_string(), format!("{t} >= 0 && u32({t}) < {out}"))
    }
}

/// Declares each row's offset `{name}{r}` (`formula` of the row's index),
/// or with `lanes` only `{name}s`, the offset of the row this lane reads.
pub(super) fn row_offsets(
    main: &mut Vec<String>,
    lanes: bool,
    name: &str,
    formula: impl Fn(&str) -> String,
) {
    match lanes {
        true => main.push(format!("    let {name}s = {};", formula("rs"))),
        false => {
            for r in 0..ROWS {
                main.push(format!(
                    "    let {name}{r} = {};",
                    formula(&format!("r{r}"))
                ));
            }
        }
    }
}

/// The 8 rows' values of one K step, `load` at each row's offset (see
/// [`row_offsets`]); with `lanes`, one load per lane (its row, declared in
/// `lines`) that row r's value is broadcast from.
pub(super) fn row_values(
    lines: &mut Vec<String>,
    lanes: bool,
    name: &str,
    load: impl Fn(&str) -> String,
) -> Vec<String> {
    match lanes {
        true => {
            let shared = format!("{name}v{}", lines.len());
            let own = load(&format!("{name}s"));
            super::super::lane_broadcasts(lines, &shared, &own, ROWS)
        }
        false => (0..ROWS).map(|r| load(&format!("{name}{r}"))).collect(),
    }
}

/// Reads the distinct elements `taps` of one source row into `{name}{j}`:
/// the element at column `start + j` of the row that starts at `row.1`,
/// zero where the row (`row.0` false) or the column (outside `0..width`)
/// is padding.
pub(super) fn window_loads(
    lines: &mut Vec<String>,
    src: &str,
    (row_ok, row): &(String, String),
    start: &str,
    width: &str,
    name: &str,
    taps: impl Iterator<Item = usize>,
) {
    let mut taps: Vec<usize> = taps.collect();
    taps.sort_unstable();
    taps.dedup();
    for j in taps {
        lines.push(format!(
            "    let {name}c{j} = {start} + {j};\n    let {name}ok{j} = {row_ok} && u32({name}c{j}) < {width};\n    let {name}{j} = select(0.0, {src}[select(0u, {row} + u32({name}c{j}), {name}ok{j})], {name}ok{j});"
        ));
    }
}

/// A window kernel's kw loop, unrolled: the distinct elements `at(c, kw)`
/// of the source row (from column `start`, `width` wide; see
/// [`window_loads`]) read once into `xw{j}`, then for each of the `taps`
/// taps the rows' values (`row_load` at a row's offset and the tap) times
/// column c's element.
#[allow(clippy::too_many_arguments)] // the window and the tap's row load
pub(super) fn unrolled_taps(
    lines: &mut Vec<String>,
    lanes: bool,
    src: &str,
    start: &str,
    width: &str,
    taps: usize,
    at: impl Fn(usize, usize) -> usize + Copy,
    row_load: impl Fn(&str, usize) -> String,
) {
    let elements = (0..COLS).flat_map(|c| (0..taps).map(move |kw| at(c, kw)));
    let row = ("hok0".to_string(), "hrow0".to_string());
    window_loads(lines, src, &row, start, width, "xw", elements);
    for kw in 0..taps {
        let a = row_values(lines, lanes, "wr", |off| row_load(off, kw));
        multiply_adds(lines, |r| a[r].clone(), |c| format!("xw{}", at(c, kw)));
    }
}

/// One step along K of the 8×8 block, in a scope of its own: row r's value
/// `a(r)` times column c's `b(c)`, added to the accumulators.
pub(super) fn multiply_adds(
    lines: &mut Vec<String>,
    a: impl Fn(usize) -> String,
    b: impl Fn(usize) -> String,
) {
    lines.push("    {".into());
    for r in 0..ROWS {
        lines.push(format!("    let ta{r} = {};", a(r)));
    }
    for gq in 0..COLS / 4 {
        let lanes: Vec<String> = (4 * gq..4 * gq + 4).map(&b).collect();
        lines.push(format!("    let tb{gq} = vec4<f32>({});", lanes.join(", ")));
    }
    for r in 0..ROWS {
        for gq in 0..COLS / 4 {
            lines.push(format!("    acc{r}_{gq} += ta{r} * tb{gq};"));
        }
    }
    lines.push("    }".into());
}
