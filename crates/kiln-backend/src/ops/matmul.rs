//! Matmul variants. The kernels themselves are generated from one template
//! (`codegen::GemmKernel`), with any elementwise epilogue fused in.

/// Which matmul kernel to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum MatmulVariant {
    /// On software adapters: 1×4 strips for outputs of at most four
    /// columns, else register-blocked 8×8 (vec4 loads when the operands
    /// allow); workgroup-tiled on hardware GPUs.
    #[default]
    Auto,
    /// One invocation per 1×4 strip of C, scalar loads: for small outputs.
    Small,
    /// 8×8 outputs per invocation in registers, scalar loads, no workgroup memory.
    Blocked,
    /// Like `Blocked` with vec4 loads along each operand's contiguous axis:
    /// needs 4-aligned strides and offsets, and K and N (A·B), K (A·Bᵀ) or M
    /// and N (Aᵀ·B) multiples of 4. Aᵀ·Bᵀ has no vec4 kernel.
    Vec4,
    /// 64×64 blocks staged through workgroup memory.
    Tiled,
}
