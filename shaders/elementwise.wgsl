// Elementwise kernels over strided views: unary maps, NumPy-broadcast binary ops,
// select, and fill. Every operand is addressed through its own offset and strides
// (a stride of 0 broadcasts), so broadcasting, transposes and strided copies need
// no extra kernels. OP picks the operation and is folded by the compiler.
// (Prefixed by activations.wgsl and elementwise_ops.wgsl.)

override WG: u32 = 64u;

const MAX_RANK: u32 = 8u;
// params layout (u32 words):
//   0 element count, 1 rank, 2 scalar parameter (f32 bits; binary ops scale
//     their result by it, 1 unless a constant factor was folded in),
//   3 contiguity bits: bit k set when operand k (a, b, c, out) is read in the
//     output's row-major order (offset + i), which skips the index arithmetic
//     (integer division is scalar, and slow, on CPU adapters),
//   4..12 output shape, then for each of a, b, c and the output: offset, strides[8].
// The output has strides too, so a kernel can write into a region of a larger
// tensor (concatenation, the gradient of a slice).
const META_SHAPE: u32 = 4u;
const META_A: u32 = 12u;
const META_B: u32 = 21u;
const META_C: u32 = 30u;
const META_OUT: u32 = 39u;

@group(0) @binding(0) var<storage, read_write> out: array<f32>;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read> c: array<f32>;
@group(0) @binding(4) var<storage, read> params: array<u32>;

fn param_word(i: u32) -> u32 {
    return params[i];
}

fn linear_index(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return (wid.y * nwg.x + wid.x) * WG + lid;
}

// Offset of element `i` (row-major over the output shape) in operand `base`.
fn operand_offset(i: u32, base: u32) -> u32 {
    let bit = 1u << ((base - META_A) / 9u);
    if ((params[3] & bit) != 0u) {
        return params[base] + i;
    }
    let rank = params[1];
    var rest = i;
    var off = params[base];
    for (var d = 0u; d < rank; d++) {
        let axis = rank - 1u - d;
        let size = params[META_SHAPE + axis];
        let coord = rest % size;
        rest = rest / size;
        off += coord * params[base + 1u + axis];
    }
    return off;
}

@compute @workgroup_size(WG)
fn unary(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
         @builtin(local_invocation_index) lid: u32) {
    let i = linear_index(wid, nwg, lid);
    if (i >= params[0]) { return; }
    out[operand_offset(i, META_OUT)] = apply_unary(a[operand_offset(i, META_A)]);
}

@compute @workgroup_size(WG)
fn binary(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(local_invocation_index) lid: u32) {
    let i = linear_index(wid, nwg, lid);
    if (i >= params[0]) { return; }
    out[operand_offset(i, META_OUT)] = apply_binary(a[operand_offset(i, META_A)], b[operand_offset(i, META_B)]) * param();
}

// The same maps when every operand and the output are read in row-major
// order: plain indexing, without the per-element offset arithmetic.
@compute @workgroup_size(WG)
fn unary_flat(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_index) lid: u32) {
    let i = linear_index(wid, nwg, lid);
    if (i >= params[0]) { return; }
    out[params[META_OUT] + i] = apply_unary(a[params[META_A] + i]);
}

@compute @workgroup_size(WG)
fn binary_flat(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) lid: u32) {
    let i = linear_index(wid, nwg, lid);
    if (i >= params[0]) { return; }
    out[params[META_OUT] + i] = apply_binary(a[params[META_A] + i], b[params[META_B] + i]) * param();
}

// out = c != 0 ? a : b
@compute @workgroup_size(WG)
fn select_where(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) lid: u32) {
    let i = linear_index(wid, nwg, lid);
    if (i >= params[0]) { return; }
    let cond = c[operand_offset(i, META_C)] != 0.0;
    out[operand_offset(i, META_OUT)] = select(b[operand_offset(i, META_B)], a[operand_offset(i, META_A)], cond);
}

@compute @workgroup_size(WG)
fn fill(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let i = linear_index(wid, nwg, lid);
    if (i >= params[0]) { return; }
    out[operand_offset(i, META_OUT)] = param();
}

// acc[0] = keep·acc[0] + scale·Σ op(a[i], b[i]) over the row-major elements,
// one invocation: a loss or metric of a batch summed into its accumulator in
// the same pass that computes it. Word 2 holds scale, word 3 keep (in place
// of the contiguity bits, which this entry does not need).
@compute @workgroup_size(1)
fn accumulate_binary() {
    var s = 0.0;
    for (var i = 0u; i < params[0]; i++) {
        s += apply_binary(a[params[META_A] + i], b[params[META_B] + i]);
    }
    let o = params[META_OUT];
    out[o] = bitcast<f32>(params[3]) * out[o] + bitcast<f32>(params[2]) * s;
}

// Two accumulators fed from one pass over the same two operands (a batch's
// loss and a metric): acc_k[0] = keep_k·acc_k[0] + scale_k·Σ op_k(a[i], b[i]).
// Words: 0 count, 2 scale₁, 3 keep₁, then META_SHAPE.. 4 op₁, 5 op₂, 6 scale₂,
// 7 keep₂ (the shape words, which this entry does not need).
@group(0) @binding(5) var<storage, read_write> out2: array<f32>;

@compute @workgroup_size(1)
fn accumulate_binary2() {
    let op1 = params[META_SHAPE];
    let op2 = params[META_SHAPE + 1u];
    var s1 = 0.0;
    var s2 = 0.0;
    for (var i = 0u; i < params[0]; i++) {
        let x = a[params[META_A] + i];
        let y = b[params[META_B] + i];
        s1 += binary_op(op1, x, y);
        s2 += binary_op(op2, x, y);
    }
    let o = params[META_OUT];
    out[o] = bitcast<f32>(params[3]) * out[o] + bitcast<f32>(params[2]) * s1;
    out2[0] = bitcast<f32>(params[META_SHAPE + 3u]) * out2[0]
        + bitcast<f32>(params[META_SHAPE + 2u]) * s2;
}
