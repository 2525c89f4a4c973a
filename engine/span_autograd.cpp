#include "engine/span_autograd.h"

#include <torch/csrc/autograd/custom_function.h>

#include "kernels/attention_cpu.h"
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

}  // namespace

at::Tensor spanAttentionAutograd(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const SpanMask& mask,
                                 double scale) {
    return SpanAttentionFunction::apply(q, k, v, static_cast<int64_t>(mask.kind), mask.span, mask.prevBlock, scale);
}

}  // namespace spanscope
