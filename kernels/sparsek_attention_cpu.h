// SparseK attention, one head of one sequence — the exact CPU reference (plain C++, no LibTorch).
//
// Legend: T tokens, D head dim, S selected (query, key) pairs beyond the windows.
//
// The rule (training, analysis and kernels must all use this one):
//   * Query i keeps its local window W_i = {max(0, i−w+1) .. i} with mask 1.
//   * Its candidates are the keys before the window, C_i = {0 .. i−w} (empty for i < w); they
//     get the soft mask m_ij = SPARSEK(u_0..u_{i−w}, k)_j (kernels/sparsek_cpu.h): values in
//     [0, 1], Σ_j m_ij = min(k, |C_i|). u_j = wᵀx_j is the per-key score of the scoring network,
//     computed by the caller; it does not depend on the query.
//   * The mask gates the exponentiated scores:
//         a_ij = m_ij · exp(s_ij) / Σ_l m_il · exp(s_il),   s_ij = scale · q_i·k_j,
//     over l ∈ W_i ∪ C_i, i.e. softmax of s_ij + log m_ij. A key with m = 1 is attended as in
//     plain attention, m = 0 removes it, and a fractional m is a soft gate through which the
//     gradient reaches the scoring network. With a 0/1 mask this is exactly attention restricted
//     to window + selected keys. O_i = Σ_j a_ij v_j; lse_i = log Σ_l m_il exp(s_il).
//   * Every row has its own key i in the window (w ≥ 1), so rows are never empty.
//   * A soft mask may have more than k non-zero entries (a fractional tail); they are all kept
//     here. Constant-memory generation keeps the hard top-k instead (SparseKStreamingSelector).
// Computed in double, stored in float. O(T² log T) per call: for tests and small analyses.
// Pure function, thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "kernels/span_mask.h"

namespace spanscope {

struct SparseKAttentionParams {
    double topK = 0;          // k >= 0 (may be fractional or +inf)
    int64_t window = 1;       // w >= 1
    double scale = 0;         // score scale; 0 means 1/sqrt(D)
    bool bisection = false;   // use sparsek_bisection_cpu (tests)
    bool probabilities = false;  // fill SparseKAttentionResult::probs (T × T; small T only)
};

struct SparseKAttentionResult {
    std::vector<float> out;   // (T, D) float32 row-major
    std::vector<float> lse;   // (T) float32: log Σ_l m_il exp(s_il)
    std::vector<double> tau;  // (T) float64: τ of each query's SPARSEK; −inf when C_i is empty
    // Selected keys beyond the window, CSR by query: for query i, entries
    // [selectedOffsets[i], selectedOffsets[i+1]) of selectedKeys (ascending) and selectedMask (> 0).
    std::vector<int64_t> selectedOffsets;  // (T + 1)
    std::vector<int64_t> selectedKeys;     // (S)
    std::vector<float> selectedMask;       // (S) float32 m_ij in (0, 1]
    std::vector<float> probs;  // (T, T) float32 a_ij when params.probabilities, else empty
    int64_t windowPairs = 0;   // Σ_i |W_i|

    // Pairs actually attended: window pairs + selected pairs (S).
    int64_t attendedPairs() const { return windowPairs + static_cast<int64_t>(selectedKeys.size()); }
};

// q, k, v: (T, D) float32 row-major; u: (T) float32 key scores (−inf: never selected).
// Throws std::invalid_argument on mismatched sizes, w < 1, k < 0, NaN or +inf scores.
SparseKAttentionResult sparsek_attention_cpu(const std::vector<float>& q, const std::vector<float>& k,
                                             const std::vector<float>& v, const std::vector<float>& u,
                                             int64_t T, int64_t D, const SparseKAttentionParams& params);

// The selections of every query of one head, exact, without the O(T² log T) of calling SPARSEK
// on every prefix: queries select among growing prefixes C_i = {0..i−w}, and τ_i never decreases
// with i (adding a candidate can only raise S(τ) = Σ clip(z − τ, 0, 1)). A candidate with
// z ≤ τ_i has p = 0 for query i and for every later query, so it is dropped for good; the solver
// keeps only the active set {z > τ} (at most k entries plus the fractional tail), sorted, and walks
// SPARSEK's breakpoints on it per query. O(T · |A|) with |A| the active set's size (all
// candidates when the scores are nearly equal: an untrained scorer).
struct SparseKSelection {
    std::vector<int64_t> offsets;  // (T + 1) CSR by query
    std::vector<int32_t> keys;     // (S) by descending score within a query
    std::vector<float> mask;       // (S) m_ij in (0, 1]
    std::vector<double> tau;       // (T) −inf where C_i is empty
    int64_t selectedPairs = 0;     // S, counted also when the keys are not kept
    // With blockRows > 0: per block of blockRows consecutive queries, the ascending union of the
    // keys its queries select — the key list of the GPU kernel's query tile (kernels/sparsek_plan.h).
    // It is the active set at the block's first query plus the keys that join it later in the
    // block, so it costs O(|A|) per block, not O(S).
    std::vector<int64_t> blockOffsets;  // (ceil(T / blockRows) + 1) CSR by block
    std::vector<int32_t> blockKeys;
};

// u: (T) key scores (−inf: never selected). Throws std::invalid_argument like sparsek_attention_cpu.
// withKeys = false: τ only (offsets all 0, keys and mask empty) — what training's mask needs.
SparseKSelection sparsek_select_cpu(const float* u, int64_t T, double topK, int64_t window, bool withKeys = true,
                                    int64_t blockRows = 0);
SparseKSelection sparsek_select_cpu(const double* u, int64_t T, double topK, int64_t window, bool withKeys = true,
                                    int64_t blockRows = 0);

// What SparseK selected in one layer, per head: sums over the queries (the analysis divides the
// bins by T). Distance bins of kernels/span_mask.h (bin 0: distance 0, b ≥ 1: [2^(b−1), 2^b)).
// Empty (no heads) for layers that are not sparsek.
struct SparseKSelectionStats {
    std::vector<double> countBins;   // (H, kNumDistanceBins): selected keys per query-key distance bin
    std::vector<double> maskBins;    // (H, kNumDistanceBins): Σ m per distance bin
    std::vector<float> keyPicks;     // (T): head-mean number of queries that selected each key
    int64_t poolRows = 0, poolCols = 0;
    std::vector<float> pooled;       // (H, Pq, Pk): mean number of selected keys per query of the
                                     //   cell's query bin (same bins and region as the pooled map)
    std::vector<std::vector<int32_t>> rowKeys;  // (R·H): the selected keys of each requested row, ascending
    std::vector<std::vector<float>> rowMask;    // (R·H): their mask values
    int64_t selectedPairs = 0;       // Σ over heads and queries of the selected keys
    int64_t fractionalPairs = 0;     // those with 0 < m < 1

    std::size_t heads() const { return countBins.size() / static_cast<std::size_t>(kNumDistanceBins); }
};

// The cost model's count for a causal sequence of T tokens with an integer budget: every query
// attends min(i+1, w) window keys plus min(topK, |C_i|) selected keys — the hard top-k that a
// kernel or a generator keeps (equals LayerSpec::sparseK(topK, w).attendedPairs(T)).
int64_t sparsek_attended_pairs(int64_t T, int64_t topK, int64_t window);

}  // namespace spanscope
