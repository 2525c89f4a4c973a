// Span attention on CUDA at the tensor level: validates inputs (TORCH_CHECK: shape, dtype, device,
// layout), allocates outputs and calls the launchers of kernels/span_attention.h on the current
// CUDA stream of q's device. Also registered as torch operators (TORCH_LIBRARY(spanscope)):
//   torch.ops.spanscope.span_attention(q, k, v, kind, span, prev_block, scale) -> (out, lse)
//   torch.ops.spanscope.span_attention_stats(q, k, v, kind, span, prev_block, scale,
//       beyond_span, sink_tokens, pool_size, query_rows) -> (out, lse, bin_mass, entropy, distance,
//       beyond_mass, sink_mass, beyond_per_query, entropy_per_query, pooled, rows)
//   torch.ops.spanscope.span_attention_backward(q, k, v, out, lse, dout, kind, span, prev_block,
//       scale) -> (dq, dk, dv)
//   torch.ops.spanscope.sparsek_attention(q, k, v, u, top_k, window, scale) -> (out, lse)
//   torch.ops.spanscope.sparsek_plan(u, top_k, window) -> (tau, block_offsets, block_keys, pairs)
//       pairs: int64 [selected pairs, window pairs]
//   torch.ops.spanscope.sparsek_attention_planned(q, k, v, u, tau, block_offsets, block_keys,
//       window, scale) -> (out, lse)   (the fused kernel alone, CUDA only: benchmarks; the plan
//       must be sparsek_plan's — shapes and dtypes are checked, the key positions are not)
//   torch.ops.spanscope.sparsek_attention_backward(q, k, v, u, tau, block_offsets, block_keys, out,
//       lse, dout, top_k, window, scale) -> (dq, dk, dv, du)   (CUDA only; the plan as above)
// kind is "full", "window" or "block". The CPU dispatch of both operators is the exact reference
// (attention_cpu.h), so the same call runs on either device.
//
// Legend: B batch, H heads, T tokens, D head dim (64 or 128), R requested rows, P pooled-map size.
// q, k, v: (B, H, T, D) bf16 or fp16 on one CUDA device, last dimension contiguous and the other
// strides multiples of 8 elements (any .contiguous() tensor qualifies).
// Only built when nvcc and a CUDA LibTorch are present (SPANSCOPE_HAVE_CUDA).
#pragma once

#include <tuple>

#include <ATen/core/Tensor.h>

#include "kernels/attention_cpu.h"
#include "kernels/sparsek_plan.h"

namespace spanscope {

// Whether the CUDA kernels accept these inputs (device, dtype, head dim, layout); callers with
// other inputs use the CPU reference (which runs on any device) or SDPA instead.
bool span_attention_cuda_supports(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v);

// Returns out (B, H, T, D) in q's dtype and lse (B, H, T) fp32, natural log of the scaled scores.
std::tuple<at::Tensor, at::Tensor> span_attention_cuda(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                                       const SpanMask& mask, double scale);

// Same, writing into given tensors: out (B, H, T, D) in q's dtype with a contiguous last dimension,
// lse (B, H, T) contiguous fp32, both on q's device (tests poison them first).
void span_attention_cuda_out(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const SpanMask& mask,
                             double scale, at::Tensor& out, at::Tensor& lse);

// Gradients dq, dk, dv (q's dtype) of span_attention_cuda from its out and lse and dout (same
// shape and dtype as q); the CUDA version of span_attention_backward_cpu.
std::tuple<at::Tensor, at::Tensor, at::Tensor> span_attention_backward_cuda(
    const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& out, const at::Tensor& lse,
    const at::Tensor& dout, const SpanMask& mask, double scale);

// Forward plus the statistics pass (B = 1); same results and semantics as span_attention_stats_cpu.
std::tuple<at::Tensor, at::Tensor, AttentionStats> span_attention_stats_cuda(
    const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const SpanMask& mask, double scale,
    const AttentionStatsOptions& options);

// The statistics pass alone, from the forward's lse (1, H, T) (e.g. after a forward run elsewhere).
AttentionStats span_attention_stats_from_lse_cuda(const at::Tensor& q, const at::Tensor& k, const at::Tensor& lse,
                                                  const SpanMask& mask, double scale,
                                                  const AttentionStatsOptions& options);

// Query rows per block of the SparseK kernel: the plan's blockRows for sparsek_attention_planned_cuda_out.
constexpr int64_t kSparseKPlanBlockRows = 128;

// SparseK attention on CUDA (the rule of kernels/sparsek_attention_cpu.h; same results as
// sparsek_attention_aten): plans the selection on the host (sparsek_plan), then runs the fused
// kernel. u: (B, H, T) key scores on q's device, any float dtype. Returns out (B, H, T, D) in q's
// dtype and lse = log Σ m·exp(s) (B, H, T) fp32.
std::tuple<at::Tensor, at::Tensor> sparsek_attention_cuda(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                                          const at::Tensor& u, double topK, int64_t window, double scale);

// The selection plan computed on u's GPU (kernels/sparsek_plan.cu: the same tau and lists as the
// host's sparsek_plan with kSparseKPlanBlockRows), falling back to the host for k = 0, k beyond
// the GPU's active-set capacity, B·H >= 65536, or when an active set outgrows that capacity
// (nearly equal scores: an untrained scorer). Scratch memory: about 17·T int32 per (b, h). u: (B, H, T)
// on a CUDA device, any float dtype; NaN or +inf scores are a c10::Error.
SparseKPlan sparsek_plan_cuda(const at::Tensor& u, double topK, int64_t window);

// The fused kernel alone, with a plan from sparsek_plan_cuda or sparsek_plan(u, topK, window,
// kSparseKPlanBlockRows, q's device) (its keys are trusted to be such a plan's: ascending positions
// < T). out, lse as for span_attention_cuda_out.
void sparsek_attention_planned_cuda_out(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& u,
                                        const SparseKPlan& plan, int64_t window, double scale, at::Tensor& out,
                                        at::Tensor& lse);
// Same, allocating out (q's dtype) and lse (float32).
std::tuple<at::Tensor, at::Tensor> sparsek_attention_planned_cuda(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                                                  const at::Tensor& u, const SparseKPlan& plan,
                                                                  int64_t window, double scale);

// Gradients of sparsek_attention_planned_cuda_out (same q, k, v, u, plan, window, scale; its out
// and lse) for dout: dq, dk, dv in q's dtype and du (B, H, T) float32 through the SPARSEK mask
// (kernels/sparsek_attention_bwd.cu for the selected keys, the span backward for the window).
// The CUDA version of sparsek_attention_backward_torch; topK must be the plan's.
std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> sparsek_attention_backward_cuda(
    const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& u, const SparseKPlan& plan,
    const at::Tensor& out, const at::Tensor& lse, const at::Tensor& dout, double topK, int64_t window, double scale);

}  // namespace spanscope
