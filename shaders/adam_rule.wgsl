// Adam's rule on one element (adam_rule) or four (adam_rule4): the new
// parameter, first and second moment. Shared by the Adam kernels of
// optim*.wgsl, which declare `hyper`:
//   0 step size lr·√(1−β₂ᵗ)/(1−β₁ᵗ), 1 ε (as added to √v), 2 β₁, 3 β₂,
//   4 decoupled decay lr·λ (AdamW), 5 L2 coefficient added to the gradient (Adam)

fn adam_rule(p: f32, grad: f32, m: f32, v: f32) -> vec3<f32> {
    let b1 = hyper[2];
    let b2 = hyper[3];
    let g = grad + hyper[5] * p;
    let m_new = b1 * m + (1.0 - b1) * g;
    let v_new = b2 * v + (1.0 - b2) * g * g;
    return vec3<f32>(p - hyper[4] * p - hyper[0] * m_new / (sqrt(v_new) + hyper[1]), m_new, v_new);
}

fn adam_rule4(p: vec4<f32>, grad: vec4<f32>, m: vec4<f32>, v: vec4<f32>) -> array<vec4<f32>, 3> {
    let b1 = hyper[2];
    let b2 = hyper[3];
    let g = grad + hyper[5] * p;
    let m_new = b1 * m + (1.0 - b1) * g;
    let v_new = b2 * v + (1.0 - b2) * g * g;
    return array<vec4<f32>, 3>(p - hyper[4] * p - hyper[0] * m_new / (sqrt(v_new) + hyper[1]), m_new, v_new);
}
