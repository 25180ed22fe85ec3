//! Shapes, strides and NumPy broadcasting.

use crate::error::{shape_error, Result};

/// The most dimensions a kernel addresses (the shaders' `MAX_RANK`).
pub const MAX_RANK: usize = 8;

/// Row-major strides of `shape`, in elements.
pub fn contiguous_strides(shape: &[usize]) -> Vec<usize> {
    let mut strides = vec![1; shape.len()];
    for d in (0..shape.len().saturating_sub(1)).rev() {
        strides[d] = strides[d + 1] * shape[d + 1];
    }
    strides
}

/// The NumPy broadcast of two shapes, or an error naming both.
pub fn broadcast_shapes(op: &str, a: &[usize], b: &[usize]) -> Result<Vec<usize>> {
    let rank = a.len().max(b.len());
    let mut out = vec![0; rank];
    for i in 0..rank {
        let da = if i + a.len() >= rank {
            a[i + a.len() - rank]
        } else {
            1
        };
        let db = if i + b.len() >= rank {
            b[i + b.len() - rank]
        } else {
            1
        };
        out[i] = match (da, db) {
            (x, y) if x == y => x,
            (1, y) => y,
            (x, 1) => x,
            _ => {
                return Err(shape_error(
                    op,
                    format!("shapes {a:?} and {b:?} do not broadcast (axis {i}: {da} vs {db})"),
                ))
            }
        };
    }
    Ok(out)
}

/// How a kernel reads an operand: element offset, shape and strides (elements).
/// A stride of 0 repeats the element along that axis.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StridedLayout {
    pub offset: usize,
    pub shape: Vec<usize>,
    pub strides: Vec<usize>,
}

impl StridedLayout {
    /// A dense row-major tensor starting at element 0.
    pub fn contiguous(shape: &[usize]) -> Self {
        Self {
            offset: 0,
            shape: shape.to_vec(),
            strides: contiguous_strides(shape),
        }
    }

    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }

    /// The strides that read this operand as if it had shape `target`
    /// (NumPy broadcasting: missing leading axes and size-1 axes get stride 0).
    pub fn broadcast_to(&self, op: &str, target: &[usize]) -> Result<Self> {
        if self.shape.len() > target.len() {
            return Err(shape_error(
                op,
                format!("cannot broadcast {:?} to {:?}", self.shape, target),
            ));
        }
        let lead = target.len() - self.shape.len();
        let mut strides = vec![0; target.len()];
        for (i, &t) in target.iter().enumerate().skip(lead) {
            let (s, st) = (self.shape[i - lead], self.strides[i - lead]);
            strides[i] = if s == t {
                st
            } else if s == 1 {
                0
            } else {
                return Err(shape_error(
                    op,
                    format!("cannot broadcast {:?} to {:?}", self.shape, target),
                ));
            };
        }
        Ok(Self {
            offset: self.offset,
            shape: target.to_vec(),
            strides,
        })
    }

    /// The same elements with axes reordered: axis `i` of the result is axis
    /// `perm[i]` of `self`.
    pub fn permuted(&self, op: &str, perm: &[usize]) -> Result<Self> {
        let mut seen = vec![false; self.shape.len()];
        if perm.len() != self.shape.len()
            || perm
                .iter()
                .any(|&p| p >= seen.len() || std::mem::replace(&mut seen[p], true))
        {
            return Err(shape_error(
                op,
                format!(
                    "{perm:?} is not a permutation of the {} axes of {:?}",
                    self.shape.len(),
                    self.shape
                ),
            ));
        }
        Ok(Self {
            offset: self.offset,
            shape: perm.iter().map(|&p| self.shape[p]).collect(),
            strides: perm.iter().map(|&p| self.strides[p]).collect(),
        })
    }

    /// One past the largest element index read.
    pub fn extent(&self) -> usize {
        if self.shape.contains(&0) {
            return self.offset;
        }
        self.offset
            + self
                .shape
                .iter()
                .zip(&self.strides)
                .map(|(&s, &st)| (s - 1) * st)
                .sum::<usize>()
            + 1
    }
}

/// An error when `shape` has more axes than kernels address.
pub(crate) fn check_rank(op: &str, shape: &[usize]) -> Result<()> {
    if shape.len() > MAX_RANK {
        return Err(shape_error(
            op,
            format!(
                "rank {} ({shape:?}) exceeds the {MAX_RANK} axes kernels address",
                shape.len()
            ),
        ));
    }
    Ok(())
}

pub(crate) fn padded(values: &[usize], fill: u32) -> [u32; MAX_RANK] {
    let mut out = [fill; MAX_RANK];
    for (o, &v) in out.iter_mut().zip(values) {
        *o = v as u32;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broadcasting_follows_numpy() {
        assert_eq!(
            broadcast_shapes("t", &[3, 1, 5], &[4, 1]).unwrap(),
            vec![3, 4, 5]
        );
        assert_eq!(broadcast_shapes("t", &[], &[2, 2]).unwrap(), vec![2, 2]);
        assert!(broadcast_shapes("t", &[3], &[4]).is_err());
        let l = StridedLayout::contiguous(&[3, 1])
            .broadcast_to("t", &[2, 3, 4])
            .unwrap();
        assert_eq!(l.strides, vec![0, 1, 0]);
    }

    #[test]
    fn strides_are_row_major() {
        assert_eq!(contiguous_strides(&[2, 3, 4]), vec![12, 4, 1]);
        assert_eq!(contiguous_strides(&[]), Vec::<usize>::new());
    }
}
