// Span attention (window / block masks) as a differentiable operation for training: the forward
// is the kernel the analysis runs (CUDA kernel on the GPU, blocked reference on the CPU), the
// backward its backward kernel (kernels/attention_cpu.h, kernels/ops.h). Only masked work is done,
// in both directions. Internal to the engine (LibTorch types).
#pragma once

#include <ATen/ATen.h>

#include "kernels/span_mask.h"

namespace spanscope {

// q, k, v: (B, H, T, D); returns out (B, H, T, D) with gradients for q, k and v.
at::Tensor spanAttentionAutograd(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const SpanMask& mask,
                                 double scale);

}  // namespace spanscope
