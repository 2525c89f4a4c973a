// Span attention (window / block masks) and SparseK attention as differentiable operations for
// training: the forward is the kernel the analysis runs (CUDA kernel on the GPU, blocked reference
// on the CPU), the backward its backward kernel (kernels/attention_cpu.h, kernels/ops.h). Only
// masked work is done, in both directions. Internal to the engine (LibTorch types).
#pragma once

#include <ATen/ATen.h>

#include "kernels/span_mask.h"

namespace spanscope {

// q, k, v: (B, H, T, D); returns out (B, H, T, D) with gradients for q, k and v.
at::Tensor spanAttentionAutograd(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const SpanMask& mask,
                                 double scale);

// SparseK attention (kernels/sparsek_attention_torch.h's rule) with gradients for q, k, v and the
// key scores u (B, H, T): on CUDA with supported shapes (span_attention_cuda_supports) the fused
// forward and the backward kernels (O(selected + window pairs)), elsewhere the dense
// differentiable reference ((B, H, T, T) tensors: short contexts only).
at::Tensor sparsekAttentionAutograd(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& u,
                                    double topK, int64_t window, double scale);

}  // namespace spanscope
