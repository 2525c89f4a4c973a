#include "kernels/sparsek_attention_torch.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/core/GradMode.h>

#include <algorithm>

#include <limits>

#include "kernels/sparsek_attention_cpu.h"

namespace spanscope {

at::Tensor sparsek_mask_torch(const at::Tensor& u, double topK, int64_t window) {
    TORCH_CHECK(u.dim() == 3, "sparsek: scores u must be (B, H, T), got ", u.sizes());
    TORCH_CHECK(window >= 1, "sparsek: window must be at least 1, got ", window);
    TORCH_CHECK(topK >= 0, "sparsek: k must be non-negative, got ", topK);
    const int64_t T = u.size(2);
    auto lo = at::TensorOptions().dtype(at::kLong).device(u.device());
    auto i = at::arange(T, lo).unsqueeze(1), j = at::arange(T, lo).unsqueeze(0);
    auto inWindow = j.le(i).logical_and((i - j).lt(window));                    // (T, T)
    auto candidate = j.le(i - window);                                          // keys before the window
    // Row targets k_i = min(k, |C_i|), |C_i| = max(0, i − w + 1).
    auto count = at::clamp_min(at::arange(T, lo) - window + 1, 0).to(at::kDouble);
    auto target = at::clamp_max(count, topK);                                   // (T)

    // τ of every row, exactly and without gradient, from the streaming selection on the host
    // (sparsek_select_cpu: O(T · |A|) per (b, h), instead of bisecting on (B, H, T, T)).
    at::Tensor tau0;
    {
        c10::NoGradGuard noGrad;
        const int64_t B = u.size(0), H = u.size(1);
        auto uh = u.detach().to(at::kCPU, at::kDouble).contiguous();
        auto tauh = at::empty({B, H, T}, at::kDouble);
        at::parallel_for(0, B * H, 1, [&](int64_t r0, int64_t r1) {
            for (int64_t r = r0; r < r1; ++r) {
                const SparseKSelection sel = sparsek_select_cpu(uh.data_ptr<double>() + r * T, T, topK, window, false);
                std::copy(sel.tau.begin(), sel.tau.end(), tauh.data_ptr<double>() + r * T);
            }
        });
        tau0 = tauh.to(u.device());
    }
    // τ on the free set, differentiable in u.
    auto z = u.to(at::kDouble).unsqueeze(2).expand({u.size(0), u.size(1), T, T});
    auto p0 = at::clamp(z.detach() - tau0.unsqueeze(-1), 0.0, 1.0).masked_fill(candidate.logical_not(), 0.0);
    // Membership with a tolerance far above the bisection's resolution: an entry within 1e-9 of a
    // breakpoint is treated as on it. Rows with k_i = |C_i| select every candidate fully (p = 1 for
    // any scores), so they have no free entries and no gradient.
    constexpr double kEdge = 1e-9;
    auto allSelected = target.ge(count).view({1, 1, T, 1});
    auto freeSet = p0.gt(kEdge).logical_and(p0.lt(1.0 - kEdge)).logical_and(candidate).logical_and(allSelected.logical_not());
    auto saturated = p0.ge(1.0 - kEdge).logical_or(allSelected).logical_and(candidate).logical_and(z.detach().isfinite());
    auto nFree = freeSet.sum(-1).to(at::kDouble), nSat = saturated.sum(-1).to(at::kDouble);
    auto zFree = at::where(freeSet, z, at::zeros_like(z)).sum(-1);
    auto tau = at::where(nFree.gt(0), (zFree - (target - nSat)) / at::clamp_min(nFree, 1.0), tau0);
    auto zc = at::where(candidate, z, at::zeros_like(z));                       // no −inf into the graph
    // Free entries follow z − τ (and carry the gradient); the others are exactly 1 or 0.
    auto p = at::where(freeSet, at::clamp(zc - tau.unsqueeze(-1), 0.0, 1.0), saturated.to(at::kDouble));
    auto mask = at::where(inWindow, at::ones_like(p), p);
    return mask.to(u.scalar_type());
}

at::Tensor sparsek_attention_torch(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& u,
                                   double topK, int64_t window, double scale, at::Tensor* lse, at::Tensor* maskOut) {
    TORCH_CHECK(q.dim() == 4 && q.sizes() == k.sizes() && q.sizes() == v.sizes(),
                "sparsek attention: q, k, v must be (B, H, T, D) of one shape, got ", q.sizes(), k.sizes(), v.sizes());
    TORCH_CHECK(u.dim() == 3 && u.size(0) == q.size(0) && u.size(1) == q.size(1) && u.size(2) == q.size(2),
                "sparsek attention: u must be (B, H, T), got ", u.sizes());
    auto m = sparsek_mask_torch(u, topK, window).to(q.scalar_type());          // (B, H, T, T)
    auto s = at::matmul(q, k.transpose(-1, -2)) * scale;
    // Row maximum over the attended set (the window always holds the query's own key).
    auto attended = m.gt(0);
    auto rowMax = s.masked_fill(attended.logical_not(), -std::numeric_limits<double>::infinity()).amax(-1, true).detach();
    auto e = at::exp(s - rowMax) * m;                                           // zero where m = 0
    auto sum = e.sum(-1, true);
    if (lse) *lse = (rowMax + at::log(sum)).squeeze(-1);
    if (maskOut) *maskOut = m;
    return at::matmul(e / sum, v);
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> sparsek_attention_backward_torch(
    const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& u, const at::Tensor& dout,
    double topK, int64_t window, double scale) {
    TORCH_CHECK(dout.sizes() == q.sizes(), "sparsek attention backward: dout must have q's shape ", q.sizes(), ", got ",
                dout.sizes());
    c10::NoGradGuard noGrad;
    auto qd = q.to(at::kDouble), kd = k.to(at::kDouble), vd = v.to(at::kDouble), dod = dout.to(at::kDouble);
    at::Tensor lse, m;
    auto out = sparsek_attention_torch(qd, kd, vd, u.to(at::kDouble), topK, window, scale, &lse, &m);
    auto e = at::exp(at::matmul(qd, kd.transpose(-1, -2)) * scale - lse.unsqueeze(-1)).masked_fill(m.le(0), 0.0);
    auto delta = (dod * out).sum(-1, true);
    auto gm = e * (at::matmul(dod, vd.transpose(-1, -2)) - delta);
    auto dS = gm * m;
    auto dq = at::matmul(dS, kd) * scale, dk = at::matmul(dS.transpose(-1, -2), qd) * scale;
    auto dv = at::matmul((e * m).transpose(-1, -2), dod);
    auto freeSet = m.gt(0).logical_and(m.lt(1)).to(at::kDouble);
    auto mean = (gm * freeSet).sum(-1, true) / at::clamp_min(freeSet.sum(-1, true), 1.0);
    auto du = ((gm - mean) * freeSet).sum(-2);
    return {dq, dk, dv, du};
}

}  // namespace spanscope
