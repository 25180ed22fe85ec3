// Elementwise kernels over strided views: unary maps, NumPy-broadcast binary ops,
// select, and fill. Every operand is addressed through its own offset and strides
// (a stride of 0 broadcasts), so broadcasting, transposes and strided copies need
// no extra kernels. OP picks the operation and is folded by the compiler.
// (Prefixed by activations.wgsl.)

override OP: u32 = 0u;
override WG: u32 = 64u;

const MAX_RANK: u32 = 8u;
// params layout (u32 words):
//   0 element count, 1 rank, 2 scalar parameter (f32 bits),
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

fn param() -> f32 {
    return bitcast<f32>(params[2]);
}

// pow with the real-valued cases WGSL leaves undefined: negative bases with
// integral exponents, and zero bases.
fn real_pow(x: f32, y: f32) -> f32 {
    if (x == 0.0) {
        if (y == 0.0) { return 1.0; }
        if (y > 0.0) { return 0.0; }
        return bitcast<f32>(0x7f800000u);
    }
    if (x < 0.0) {
        if (y != floor(y)) { return bitcast<f32>(0x7fc00000u); }
        let r = pow(-x, y);
        if (abs(y % 2.0) == 1.0) { return -r; }
        return r;
    }
    return pow(x, y);
}

fn apply_unary(x: f32) -> f32 {
    switch OP {
        case 0u: { return x; }
        case 1u: { return -x; }
        case 2u: { return exp(x); }
        case 3u: { return log(x); }
        case 4u: { return sqrt(x); }
        case 5u: { return abs(x); }
        case 6u: { return relu(x); }
        case 7u: { return select(param() * x, x, x >= 0.0); }
        case 8u: { return stable_sigmoid(x); }
        case 9u: { return stable_tanh(x); }
        case 10u: { return 1.0 / x; }
        case 11u: { return x * x; }
        case 12u: { return sign(x); }
        case 13u: { return select(0.0, 1.0, x > 0.0); }
        case 14u: { return x * param(); }
        case 15u: { return x + param(); }
        case 16u: { return real_pow(x, param()); }
        case 17u: { return inverseSqrt(x); }
        default: { return x; }
    }
}

const BCE_EPSILON: f32 = 1e-7;

// log(1 + t) for t in [0, 1], accurate also where 1 + t rounds to 1.
fn log1p_small(t: f32) -> f32 {
    if (t < 1e-4) { return t - 0.5 * t * t; }
    return log(1.0 + t);
}

fn apply_binary(x: f32, y: f32) -> f32 {
    switch OP {
        case 0u: { return x + y; }
        case 1u: { return x - y; }
        case 2u: { return x * y; }
        case 3u: { return x / y; }
        case 4u: { return max(x, y); }
        case 5u: { return min(x, y); }
        case 6u: { return real_pow(x, y); }
        case 7u: { return select(0.0, 1.0, x == y); }
        case 8u: { return select(0.0, 1.0, x != y); }
        case 9u: { return select(0.0, 1.0, x < y); }
        case 10u: { return select(0.0, 1.0, x <= y); }
        case 11u: { return select(0.0, 1.0, x > y); }
        case 12u: { return select(0.0, 1.0, x >= y); }
        case 13u: { return select(0.0, y, x > 0.0); }
        case 14u: { return y * x * (1.0 - x); }
        case 15u: { return y * (1.0 - x * x); }
        case 16u: {
            // clamp would turn a NaN probability into a finite loss
            if (is_nan(x)) { return x; }
            let p = clamp(x, BCE_EPSILON, 1.0 - BCE_EPSILON);
            return -(y * log(p) + (1.0 - y) * log(1.0 - p));
        }
        case 17u: {
            if (x < BCE_EPSILON || x > 1.0 - BCE_EPSILON) { return 0.0; }
            return -y / x + (1.0 - y) / (1.0 - x);
        }
        // log(1 + e^-|x|) through log1p's series where e^-|x| is tiny
        case 18u: { return max(x, 0.0) - x * y + log1p_small(exp(-abs(x))); }
        case 19u: { return stable_sigmoid(x) - y; }
        case 20u: { return select(0.0, 1.0, (x > 0.5) == (y > 0.5)); }
        default: { return x; }
    }
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
    out[operand_offset(i, META_OUT)] = apply_binary(a[operand_offset(i, META_A)], b[operand_offset(i, META_B)]);
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
    out[params[META_OUT] + i] = apply_binary(a[params[META_A] + i], b[params[META_B] + i]);
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
