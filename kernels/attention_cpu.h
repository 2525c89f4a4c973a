// Span attention and its statistics — the exact reference implementation.
//
// Legend: B batch, H heads, T tokens, D head dim, R requested rows, P pooled-map size,
// NB = kNumDistanceBins log2-distance bins (bin 0: distance 0; bin k >= 1: distance in [2^(k-1), 2^k)).
//
// Works query block by query block: a block of queries [q0, q1) only scores keys
// [mask.firstKey(q0), q1), so memory is O(block · keys) and never O(T²), and the work follows the
// attended pairs. Written with ATen ops in fp32, so it runs on any device; it is the CPU path of
// the engine and the reference the CUDA kernels are tested against. Not thread-safe per call
// (uses ATen's own intra-op threads); independent calls may run concurrently.
#pragma once

#include <cstdint>
#include <tuple>
#include <vector>

#include <ATen/core/Tensor.h>

#include "kernels/span_mask.h"
#include "kernels/sparsek_attention_cpu.h"

namespace spanscope {

struct AttentionStatsOptions {
    int64_t beyondSpan = 0;            // "mass beyond span": mass at distance >= beyondSpan (0: skip)
    int64_t sinkTokens = 4;            // "sink mass": mass on keys 0..sinkTokens-1
    int64_t poolSize = 0;              // P of the pooled map (0: no map); clamped to the region
    // Region of the pooled map: queries [mapQ0, mapQ1) x keys [mapK0, mapK1); -1 ends mean T.
    // Zooming into a small region gives exact token cells (P >= region size).
    int64_t mapQ0 = 0, mapQ1 = -1, mapK0 = 0, mapK1 = -1;
    std::vector<int64_t> queryRows;    // exact rows wanted for these query positions
    int64_t blockElements = 1 << 23;   // score elements per query block (memory knob)
};

// Sums over the queries of one sequence (B = 1), per head; divide by T for means.
struct AttentionStats {
    at::Tensor binMass;         // (H, NB) float64: mass per distance bin
    at::Tensor entropy;         // (H) float64: row entropy in nats
    at::Tensor distance;        // (H) float64: mean query–key distance of each row
    at::Tensor beyondMass;      // (H) float64: mass at distance >= beyondSpan
    at::Tensor sinkMass;        // (H) float64: mass on the first sinkTokens keys
    at::Tensor beyondPerQuery;  // (T) float32: head-mean mass beyond span of each query
    at::Tensor entropyPerQuery; // (T) float32: head-mean entropy of each query
    at::Tensor pooled;          // (H, Pq, Pk) float32: query bin × key bin of the map region, mean over
                                //   the bin's queries of the mass they put in the key bin (over the
                                //   whole key range, rows sum to 1); Pq, Pk = min(P, region size)
    at::Tensor rows;            // (R, H, T) float32: exact attention rows (zero where not attended)
};

// Boolean (q1 - q0, k1 - k0) tensor, on o's device, of which query rows [q0, q1) may attend key
// columns [k0, k1) under `mask` (the rule of span_mask.h, built with tensor ops).
at::Tensor blockMask(const SpanMask& mask, int64_t q0, int64_t q1, int64_t k0, int64_t k1, const at::TensorOptions& o);

// q, k, v: (B, H, T, D), any float dtype, same device. Returns out (B, H, T, D) in q's dtype and
// the row log-sum-exp lse (B, H, T) float32 of the scaled scores.
std::tuple<at::Tensor, at::Tensor> span_attention_cpu(const at::Tensor& q, const at::Tensor& k,
                                                      const at::Tensor& v, const SpanMask& mask, double scale);

// Same attention plus the statistics above, in one pass; requires B = 1.
std::tuple<at::Tensor, at::Tensor, AttentionStats> span_attention_stats_cpu(
    const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const SpanMask& mask, double scale,
    const AttentionStatsOptions& options);

// Gradients of span_attention_cpu: from q, k, v, its out and lse, and dout = dL/dout (all
// (B, H, T, D), lse (B, H, T)) returns dq, dk, dv in q's dtype, accumulated in fp32. Blocked like
// the forward (memory O(block · keys), work on the attended pairs only), recomputing
// P = exp(S·scale − lse) per block: dV += Pᵀ dO, dP = dO Vᵀ, dS = P ∘ (dP − rowsum(dO ∘ O)),
// dQ = dS K · scale, dK += dSᵀ Q · scale. The reference of the CUDA backward kernel.
std::tuple<at::Tensor, at::Tensor, at::Tensor> span_attention_backward_cpu(
    const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& out, const at::Tensor& lse,
    const at::Tensor& dout, const SpanMask& mask, double scale);

// SparseK attention (the rule of kernels/sparsek_attention_cpu.h: window w with mask 1, keys
// before it gated by m = SPARSEK(u, k)), blocked like span attention and on any device. The
// selections come from sparsek_select_cpu on the host (u is copied there; O(T · |A|) per
// head); each query block then scores keys [first selected key, q1) and adds log m (0 on the window,
// −inf elsewhere) before the softmax, so the work is that of full attention on the key range
// (the CUDA kernel, sparsek_attention_cuda in ops.h, touches only the window and the block's
// selected keys). q, k, v: (1, H, T, D); u: (1, H, T).
// Returns out (1, H, T, D) in q's dtype and lse = log Σ m·exp(s) (1, H, T) float32.
std::tuple<at::Tensor, at::Tensor> sparsek_attention_aten(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                                          const at::Tensor& u, double topK, int64_t window, double scale);

// The same with the statistics of span_attention_stats_cpu (the attention weights are
// a_ij = m_ij·exp(s_ij − lse_i)) and the selections' own summary.
std::tuple<at::Tensor, at::Tensor, AttentionStats> sparsek_attention_stats_aten(
    const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& u, double topK, int64_t window,
    double scale, const AttentionStatsOptions& options, SparseKSelectionStats& selections);

// The textbook version — forms the whole (T, T) score matrix — for tests on small T.
std::tuple<at::Tensor, at::Tensor> naive_attention_reference(const at::Tensor& q, const at::Tensor& k,
                                                             const at::Tensor& v, const SpanMask& mask, double scale);

}  // namespace spanscope
