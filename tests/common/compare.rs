//! Comparisons of computed values with reference values that check the
//! lengths first: a short result never passes by `zip` stopping early.
//! Dependency-free, so every test crate of the workspace can include it
//! (`#[path = "…/tests/common/compare.rs"]`).

#![allow(dead_code)] // each test binary uses its own subset

/// Asserts that `got` has `want`'s length and every element is within
/// `atol + rtol·|want|` of it (NaN never is).
pub fn assert_all_close(what: &str, got: &[f32], want: &[f32], atol: f64, rtol: f64) {
    assert_same_length(what, got, want);
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let err = (g as f64 - w as f64).abs();
        assert!(
            err <= atol + rtol * (w as f64).abs(),
            "{what}[{i}]: got {g}, want {w} (error {err:e})"
        );
    }
}

/// Asserts that `got` equals `want` bit for bit, lengths first; names how
/// many values differ and the first.
pub fn assert_bit_identical(what: &str, got: &[f32], want: &[f32]) {
    assert_same_length(what, got, want);
    let differ: Vec<usize> = (0..got.len())
        .filter(|&i| got[i].to_bits() != want[i].to_bits())
        .collect();
    if let Some(&i) = differ.first() {
        panic!(
            "{what}: {} of {} values differ, first [{i}]: {} vs {}",
            differ.len(),
            got.len(),
            got[i],
            want[i]
        );
    }
}

/// The first check of every comparison here: a short or long result fails,
/// naming both lengths.
fn assert_same_length(what: &str, got: &[f32], want: &[f32]) {
    assert_eq!(
        got.len(),
        want.len(),
        "{what}: {} values, {} expected",
        got.len(),
        want.len()
    );
}
