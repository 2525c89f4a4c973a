// SparseK attention with ATen, differentiable end to end (autograd reaches q, k, v and the key
// scores u), following exactly the rule of kernels/sparsek_attention_cpu.h: query i keeps its
// window {i−w+1..i} with mask 1 and gates the keys before it, 0..i−w, with the soft mask
// m_i = SPARSEK(u_0..u_{i−w}, k); a_ij = m_ij·exp(s_ij) / Σ_l m_il·exp(s_il).
//
// SPARSEK per row: τ comes from the exact streaming selection (sparsek_select_cpu, on the host)
// without gradient, then is re-expressed on the free set
// F = {0 < p < 1} and the saturated set U = {p = 1} as τ = (Σ_F z − (k_i − |U|)) / |F|, so that
// autograd through p = clip(z − τ, 0, 1) yields the operator's gradient g_z = g_p − mean_F(g_p) on
// F and 0 elsewhere (k_i = min(k, i−w+1)).
//
// Dense: forms (B, H, T, T) tensors, so it is for training small models and short documents on the
// CPU, and the reference a fused CUDA kernel will be tested against. Any float dtype, any device.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <tuple>

namespace spanscope {

// The soft mask M (B, H, T, T): 1 on each query's window, SPARSEK weights on the keys before it,
// 0 elsewhere. u: (B, H, T) key scores (−inf: never selected). Differentiable in u.
at::Tensor sparsek_mask_torch(const at::Tensor& u, double topK, int64_t window);

// q, k, v: (B, H, T, D); u: (B, H, T). Returns out (B, H, T, D); lse (B, H, T) = log Σ m·exp(s)
// and the mask M when the pointers are given.
at::Tensor sparsek_attention_torch(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& u,
                                   double topK, int64_t window, double scale, at::Tensor* lse = nullptr,
                                   at::Tensor* mask = nullptr);

// The backward in closed form, the CPU reference of the CUDA backward (kernels/ops.h; any device,
// dense, fp64 throughout): recomputes out and lse, then with e_ij = exp(s_ij·scale − lse_i) on
// attended pairs, P = e∘M, dP = dout vᵀ, delta_i = Σ dout_i ∘ out_i, gm = e∘(dP − delta) (∂L/∂M)
// and dS = gm∘M:
//   dq = dS k · scale, dk = dSᵀ q · scale, dv = Pᵀ dout,
//   du_j = Σ_i [j ∈ F_i] (gm_ij − mean_{F_i} gm_i·),  F_i = {j : 0 < M_ij < 1} (the free set of row
//   i's SPARSEK; the window's 1s and saturated or dropped keys are outside it).
// Returns dq, dk, dv (B, H, T, D) and du (B, H, T), fp64.
std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> sparsek_attention_backward_torch(
    const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& u, const at::Tensor& dout,
    double topK, int64_t window, double scale);

}  // namespace spanscope
