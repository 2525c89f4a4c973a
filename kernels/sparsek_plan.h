// The selection plan of SparseK attention on a GPU: what the fused kernel
// (kernels/sparsek_attention_fwd.cu) needs from the exact streaming selection, computed on the
// host (sparsek_select_cpu per (b, h), τ and the block lists only, O(T · |A|) each, heads in
// parallel).
//
// Legend: B batch, H heads, T tokens, NB = ceil(T / blockRows) query blocks, L the total length
// of the blocks' key lists.
//   * tau (B, H, T) float32: each query's SPARSEK threshold (−inf where it has no candidates).
//     The kernel recomputes m_ij = clip(u_j − tau_i, 0, 1) for j ≤ i − w from it.
//   * per (b, h, block of blockRows queries), the ascending list of keys that at least one of the
//     block's queries selected (m > 0): blockOffsets (B·H·NB + 1) int32, CSR into blockKeys (L)
//     int32. Since a key that drops out of a query's selection never returns for later queries,
//     a block's list holds about k plus the keys that enter while its queries advance; the solver
//     emits it from its active set in O(|A|) per block.
// Pure function of its inputs; thread-safe.
#pragma once

#include <cstdint>

#include <ATen/core/Tensor.h>

namespace spanscope {

struct SparseKPlan {
    at::Tensor tau;           // (B, H, T) float32
    at::Tensor blockOffsets;  // (B·H·NB + 1) int32
    at::Tensor blockKeys;     // (L) int32, ascending within each block
    int64_t selectedPairs = 0;  // Σ over (b, h, i) of keys with m > 0 beyond the window
    int64_t windowPairs = 0;    // Σ over (b, h, i) of min(i + 1, w)
};

// Σ over the T queries of their window keys, min(i + 1, w): SparseKPlan::windowPairs of one (b, h).
int64_t sparsek_window_pairs(int64_t T, int64_t window);

// u: (B, H, T) key scores, any float dtype and device (copied to the host). Results on `device`.
// Throws c10::Error (TORCH_CHECK) on a wrong shape, k < 0, w < 1, blockRows < 1, NaN or +inf
// scores, or lists too long for int32 offsets.
SparseKPlan sparsek_plan(const at::Tensor& u, double topK, int64_t window, int64_t blockRows, const at::Device& device);

}  // namespace spanscope
