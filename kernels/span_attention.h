// Span attention on CUDA — plain parameter structs and launchers (no torch types). The torch-level
// functions that validate inputs and call these live in kernels/ops.h.
//
// Legend: B batch, H heads, T tokens, D head dim (64 or 128), P pooled-map size, NB distance bins.
// q, k, v: (B, H, T, D) in bf16 or fp16, last dimension contiguous, rows 16-byte aligned (strides
// in elements below). out: (B, H, T, D) same dtype, same strides as given. lse: (B, H, T) fp32,
// contiguous, natural-log log-sum-exp of the scaled scores (the CPU reference's convention).
// Launchers enqueue on `stream` and return immediately; they throw std::runtime_error on a launch
// error. Thread safety: independent calls may run concurrently on different streams.
#pragma once

#include <cstdint>

#include <cuda_runtime_api.h>

#include "kernels/span_mask.h"

namespace spanscope::cuda {

// Distance bins of the statistics (equals kNumDistanceBins of attention_cpu.h; checked in ops.cpp).
constexpr int kStatsDistanceBins = 24;

enum class ElemType : int32_t { BF16 = 0, FP16 = 1 };

struct Strides {
    int64_t b = 0, h = 0, t = 0;  // in elements; the D dimension has stride 1
};

struct SpanAttentionParams {
    const void* q = nullptr;
    const void* k = nullptr;
    const void* v = nullptr;
    void* out = nullptr;
    float* lse = nullptr;       // (B, H, T) contiguous
    Strides qs, ks, vs, os;
    int32_t B = 0, H = 0, T = 0, D = 0;
    float scale = 1.0f;
    SpanMask mask;
    ElemType elem = ElemType::BF16;
};

void span_attention_fwd_launch(const SpanAttentionParams& p, cudaStream_t stream);
// The Hopper (wgmma + TMA) forward that span_attention_fwd_launch picks on compute capability 9.0
// in an sm_90a build; variant 0 is the default configuration, others exist for tuning. Returns
// false, launching nothing, where TMA cannot describe q, k or v (unusual strides).
bool span_attention_fwd_sm90_launch(const SpanAttentionParams& p, int variant, cudaStream_t stream);

// Which kernel a launcher uses, from the environment variable envName ("mma" or "sm90:N"; unset or
// empty: the default): -1 for the mma.sync kernel (forced, or no compute-capability 9.0 GPU, or a
// build without sm_90a code), else the Hopper variant N (0 = default). Any other value throws
// std::invalid_argument naming the variable.
int sm90KernelChoice(const char* envName);

// Backward: dq (fp32, accumulated into zero-initialised dqAccum), dk, dv (input dtype) from q, k,
// v, dout, the forward's lse and delta = rowsum(dout ∘ out). dk, dv, dqAccum, lse and delta are
// contiguous; q, k, v, dout as in the forward.
struct SpanAttentionBwdParams {
    const void* q = nullptr;
    const void* k = nullptr;
    const void* v = nullptr;
    const void* dout = nullptr;
    const float* lse = nullptr;    // (B, H, T)
    const float* delta = nullptr;  // (B, H, T)
    void* dk = nullptr;            // (B, H, T, D) contiguous
    void* dv = nullptr;            // (B, H, T, D) contiguous
    float* dqAccum = nullptr;      // (B, H, T, D) contiguous fp32, zeros on entry
    Strides qs, ks, vs, dos;
    int32_t B = 0, H = 0, T = 0, D = 0;
    float scale = 1.0f;
    SpanMask mask;
    ElemType elem = ElemType::BF16;
};

void span_attention_bwd_launch(const SpanAttentionBwdParams& p, cudaStream_t stream);

// Statistics pass (B = 1): recomputes the scores and p = exp(s * scale - lse) tile by tile, and
// accumulates into zero-initialised outputs (sums over queries, as in AttentionStats):
struct SpanStatsParams {
    const void* q = nullptr;
    const void* k = nullptr;
    const float* lse = nullptr;  // (H, T) from the forward pass
    Strides qs, ks;
    int32_t H = 0, T = 0, D = 0;
    float scale = 1.0f;
    SpanMask mask;
    ElemType elem = ElemType::BF16;
    int32_t beyondSpan = 0;       // 0: skip beyond-span sums
    int32_t sinkTokens = 0;
    // Pooled map over the region queries [mapQ0, mapQ1) x keys [mapK0, mapK1): Pq x Pk bins
    // (0: none); position x of a region [lo, hi) with n bins is in bin floor((x - lo) * n / (hi - lo)).
    int32_t Pq = 0, Pk = 0;
    int32_t mapQ0 = 0, mapQ1 = 0, mapK0 = 0, mapK1 = 0;
    double* binMass = nullptr;    // (H, NB)
    double* entropy = nullptr;    // (H)
    double* distance = nullptr;   // (H)
    double* beyondMass = nullptr; // (H)
    double* sinkMass = nullptr;   // (H)
    float* beyondPerQuery = nullptr;   // (T): sum over heads / H
    float* entropyPerQuery = nullptr;  // (T): sum over heads / H
    float* pooled = nullptr;      // (H, Pq, Pk): means over each row bin's queries (added in place)
    const int32_t* rowSlot = nullptr;  // (T): slot in `rows` of each query whose exact row is wanted, -1 none
    float* rows = nullptr;        // (R, H, T): exact rows, written where attended (zeros elsewhere)
};

void span_attention_stats_launch(const SpanStatsParams& p, cudaStream_t stream);
// The Hopper statistics kernel that span_attention_stats_launch picks as the forward's launcher
// does (SPANSCOPE_STATS_KERNEL; variants 1-5 are tuning configurations, any other N > 5 runs
// variant 1's); false, launching nothing, where TMA cannot describe q or k.
bool span_attention_stats_sm90_launch(const SpanStatsParams& p, int variant, cudaStream_t stream);

// SparseK attention forward (kernels/sparsek_attention_cpu.h's rule): query i attends its window
// {i-w+1 .. i} with mask 1 and the keys j <= i-w gated by m_ij = clip(u_j - tau_i, 0, 1), i.e.
// softmax over s_ij + log m_ij. The selection's plan comes from the host (kernels/sparsek_plan.h):
// tau per query and, per block of kSparseKBlockRows queries, the ascending list of keys that any
// of its queries selected. The kernel gathers those keys' K/V rows, recomputes m_ij from u and
// tau, then runs the window tiles; the cost follows window + selected pairs. out, lse as above.
constexpr int kSparseKBlockRows = 128;

struct SparseKAttentionFwdParams {
    const void* q = nullptr;
    const void* k = nullptr;
    const void* v = nullptr;
    void* out = nullptr;
    float* lse = nullptr;              // (B, H, T) contiguous
    const float* u = nullptr;          // (B, H, T) contiguous key scores
    const float* tau = nullptr;        // (B, H, T) contiguous thresholds (-inf: no candidates)
    const int32_t* blockOffsets = nullptr;  // (B*H*nBlocks + 1), nBlocks = ceil(T / kSparseKBlockRows)
    const int32_t* blockKeys = nullptr;     // ascending key positions per (b, h, block)
    Strides qs, ks, vs, os;
    int32_t B = 0, H = 0, T = 0, D = 0;
    int32_t window = 1;
    float scale = 1.0f;
    ElemType elem = ElemType::BF16;
};

void sparsek_attention_fwd_launch(const SparseKAttentionFwdParams& p, cudaStream_t stream);

// SparseK attention backward, the part through the selected keys (the window part is the span
// backward with the window mask, fed the SparseK forward's lse and delta: window keys have m = 1).
// Per block of kSparseKBwdRows queries (the plan's blocks, halved) it recomputes, for each gathered
// key j of the plan's list and each row i with j <= i - w and m_ij = clip(u_j - tau_i, 0, 1) > 0,
//   e_ij = exp(s_ij * scale - lse_i),  P_ij = e_ij m_ij,  dP_ij = dO_i . v_j,
//   dS_ij = P_ij (dP_ij - delta_i),    gm_ij = e_ij (dP_ij - delta_i)   (dL/dm_ij)
// and adds dq_i = scale Σ dS_ij k_j (stored: dqAccum rows of the block are overwritten, not added),
// dk_j += scale Σ dS_ij q_i, dv_j += Σ P_ij dO_i (fp32 atomics into dkAccum, dvAccum) and the
// SPARSEK Jacobian: on row i's free set F_i = {0 < m_ij < 1} (empty when the row selects all its
// candidates, i - w + 1 <= k), du_j += gm_ij - mean_{F_i} gm (fp32 atomics into du).
constexpr int kSparseKBwdRows = 64;

struct SparseKAttentionBwdParams {
    const void* q = nullptr;
    const void* k = nullptr;
    const void* v = nullptr;
    const void* dout = nullptr;
    const float* lse = nullptr;     // (B, H, T) the forward's
    const float* delta = nullptr;   // (B, H, T) rowsum(dout ∘ out)
    const float* u = nullptr;       // (B, H, T)
    const float* tau = nullptr;     // (B, H, T)
    const int32_t* blockOffsets = nullptr;  // the forward's plan (kSparseKBlockRows per block)
    const int32_t* blockKeys = nullptr;
    float* dqAccum = nullptr;       // (B, H, T, D) contiguous fp32: written (every row)
    float* dkAccum = nullptr;       // (B, H, T, D) contiguous fp32: added to
    float* dvAccum = nullptr;       // (B, H, T, D) contiguous fp32: added to
    float* du = nullptr;            // (B, H, T) fp32: added to
    Strides qs, ks, vs, dos;
    int32_t B = 0, H = 0, T = 0, D = 0;
    int32_t window = 1;
    double topK = 0;
    float scale = 1.0f;
    ElemType elem = ElemType::BF16;
};

void sparsek_attention_bwd_launch(const SparseKAttentionBwdParams& p, cudaStream_t stream);

// SparseK selection plan on the GPU: the exact streaming selection of sparsek_select_cpu (same
// walk, same tie order, IEEE double arithmetic without contraction, so the same tau). One thread
// block per (b, h) and segment of kSparseKPlanSegmentBlocks query blocks walks its blocks in
// order: it keeps the active set {z > tau} sorted by descending score (ties: earlier key first) in
// shared memory, merges each block's 128 joining keys, solves tau for the block's 128 queries in
// parallel (one thread each), emits the block's key list (ascending) and prunes the set to z > tau
// of the block's last query. A segment after the first starts from a superset of the active set
// before it: the keys above a lower bound of that tau found by bisection over the prefix (keys at
// or below the true tau never change a later walk and are pruned at the first block's end).
// topK > 0 only. An active set beyond kSparseKPlanCapacity entries sets *overflow and stops (the
// caller then plans on the host).
constexpr int kSparseKPlanCapacity = 2048;
constexpr int kSparseKPlanSegmentBlocks = 4;

struct SparseKPlanParams {
    const float* u = nullptr;          // (BH, T) key scores: finite or -inf (checked by the caller)
    float* tau = nullptr;              // (BH, T)
    int32_t* blockCounts = nullptr;    // (BH, NB): length of each block's key list
    int32_t* keys = nullptr;           // (BH, nSeg, regionSize): each segment's lists, back to back
    int64_t regionSize = 0;            // entries per segment region (segment blocks * (capacity + 128))
    unsigned long long* selected = nullptr;  // (BH): Σ_i |{z > tau_i}|
    int32_t* overflow = nullptr;       // (1) set to 1 when an active set outgrows the capacity
    int32_t BH = 0, T = 0, window = 1;
    double topK = 1;
};

void sparsek_plan_launch(const SparseKPlanParams& p, cudaStream_t stream);

}  // namespace spanscope::cuda
