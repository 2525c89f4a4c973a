#include "engine/span_autograd.h"

#include <torch/csrc/autograd/custom_function.h>

#include "kernels/attention_cpu.h"
#include "kernels/sparsek_attention_torch.h"
#ifdef SPANSCOPE_HAVE_CUDA
#include "kernels/ops.h"
#endif

namespace spanscope {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

#ifdef SPANSCOPE_HAVE_CUDA
bool onGpuKernel(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v) {
    return q.is_cuda() && span_attention_cuda_supports(q, k, v);
}
#endif

struct SpanAttentionFunction : public torch::autograd::Function<SpanAttentionFunction> {
    static at::Tensor forward(AutogradContext* ctx, const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                              int64_t kind, int64_t span, bool prevBlock, double scale) {
        const SpanMask mask{static_cast<MaskKind>(kind), span, prevBlock};
        at::Tensor out, lse;
#ifdef SPANSCOPE_HAVE_CUDA
        if (onGpuKernel(q, k, v)) std::tie(out, lse) = span_attention_cuda(q, k, v, mask, scale);
        else
#endif
            std::tie(out, lse) = span_attention_cpu(q, k, v, mask, scale);
        ctx->save_for_backward({q, k, v, out, lse});
        ctx->saved_data["kind"] = kind;
        ctx->saved_data["span"] = span;
        ctx->saved_data["prev"] = prevBlock;
        ctx->saved_data["scale"] = scale;
        return out;
    }

    static variable_list backward(AutogradContext* ctx, variable_list grads) {
        auto saved = ctx->get_saved_variables();
        const SpanMask mask{static_cast<MaskKind>(ctx->saved_data["kind"].toInt()), ctx->saved_data["span"].toInt(),
                            ctx->saved_data["prev"].toBool()};
        const double scale = ctx->saved_data["scale"].toDouble();
        auto dout = grads[0].to(saved[0].scalar_type()).contiguous();
        at::Tensor dq, dk, dv;
#ifdef SPANSCOPE_HAVE_CUDA
        if (onGpuKernel(saved[0], saved[1], saved[2]))
            std::tie(dq, dk, dv) = span_attention_backward_cuda(saved[0], saved[1], saved[2], saved[3], saved[4], dout, mask, scale);
        else
#endif
            std::tie(dq, dk, dv) = span_attention_backward_cpu(saved[0], saved[1], saved[2], saved[3], saved[4], dout, mask, scale);
        return {dq, dk, dv, at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
    }
};

#ifdef SPANSCOPE_HAVE_CUDA
// SparseK on the GPU: the plan (kept for the backward), the fused forward, the backward kernels.
struct SparseKAttentionFunction : public torch::autograd::Function<SparseKAttentionFunction> {
    static at::Tensor forward(AutogradContext* ctx, const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                              const at::Tensor& u, double topK, int64_t window, double scale) {
        const at::Tensor uf = u.to(at::kFloat).contiguous();
        const SparseKPlan plan = sparsek_plan_cuda(uf, topK, window);
        auto [out, lse] = sparsek_attention_planned_cuda(q, k, v, uf, plan, window, scale);
        ctx->save_for_backward({q, k, v, uf, out, lse, plan.tau, plan.blockOffsets, plan.blockKeys});
        ctx->saved_data["topK"] = topK;
        ctx->saved_data["window"] = window;
        ctx->saved_data["scale"] = scale;
        ctx->saved_data["uType"] = static_cast<int64_t>(u.scalar_type());
        return out;
    }

    static variable_list backward(AutogradContext* ctx, variable_list grads) {
        auto s = ctx->get_saved_variables();
        const SparseKPlan plan{s[6], s[7], s[8]};
        auto dout = grads[0].to(s[0].scalar_type()).contiguous();
        auto [dq, dk, dv, du] = sparsek_attention_backward_cuda(
            s[0], s[1], s[2], s[3], plan, s[4], s[5], dout, ctx->saved_data["topK"].toDouble(),
            ctx->saved_data["window"].toInt(), ctx->saved_data["scale"].toDouble());
        return {dq, dk, dv, du.to(static_cast<at::ScalarType>(ctx->saved_data["uType"].toInt())), at::Tensor(), at::Tensor(),
                at::Tensor()};
    }
};
#endif

}  // namespace

at::Tensor sparsekAttentionAutograd(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& u,
                                    double topK, int64_t window, double scale) {
#ifdef SPANSCOPE_HAVE_CUDA
    if (onGpuKernel(q, k, v)) return SparseKAttentionFunction::apply(q, k, v, u, topK, window, scale);
#endif
    return sparsek_attention_torch(q, k, v, u, topK, window, scale);
}

at::Tensor spanAttentionAutograd(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const SpanMask& mask,
                                 double scale) {
    return SpanAttentionFunction::apply(q, k, v, static_cast<int64_t>(mask.kind), mask.span, mask.prevBlock, scale);
}

}  // namespace spanscope
