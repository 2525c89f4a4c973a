// SPARSEK — the differentiable top-k operator of SparseK attention (Lou et al., "Sparser is Faster
// and Less is More", arXiv 2406.16747) — CPU reference, plain C++ (no LibTorch).
//
//   SPARSEK(z, k) = p,   p_j = clip(z_j − τ, 0, 1),   τ chosen so that Σ_j p_j = k.
//
// p is the Euclidean projection of z onto the capped simplex {0 ≤ p ≤ 1, Σp = k}: a soft top-k
// mask. Entries with z_j ≥ τ + 1 are saturated (p = 1), entries with z_j ≤ τ are dropped (p = 0),
// the rest form the free set F = {0 < p < 1} and slide linearly with z.
//
// Conventions (shared by both solvers, the backward and the attention reference):
//   * m scores, of which m_f are finite. −inf scores are never selected (p = 0) and do not count
//     towards m_f. NaN or +inf scores, NaN or negative k throw std::invalid_argument.
//   * k = 0 selects nothing: p = 0, τ = max z. (k < 0 is an error, not an empty selection: a
//     negative budget is always a caller bug.)
//   * k ≥ m_f selects every finite score: p = 1 there, so Σp = min(k, m_f); τ = min z − 1.
//     k = +inf is allowed and means "everything".
//   * Ties need no special care: tied scores get equal p.
//   * Where Σp = k holds on a whole interval of τ (k an integer and a gap of more than 1 between
//     the k-th and (k+1)-th largest scores, so F = ∅), both solvers return the largest such τ;
//     p is the same on the whole interval.
//   * m_f = 0: p = 0, τ = −inf.
// Both solvers work in double precision; Σp = min(k, m_f) holds to about m · 1e-16 · max|z|.
// All functions are pure and thread-safe.
#pragma once

#include <cstdint>
#include <vector>

namespace spanscope {

struct SparseKResult {
    std::vector<double> p;  // (m) soft mask in [0, 1], Σp = min(k, m_f)
    double tau = 0;         // the threshold τ
};

// Exact solver, O(m log m): sorts the finite scores and walks the breakpoints of
// S(τ) = Σ clip(z_j − τ, 0, 1) (z_j where p_j leaves 0, z_j − 1 where it reaches 1) from large
// τ down until S reaches k, then solves the linear piece in closed form.
// z: (m) float64, any order.
SparseKResult sparsek_cpu(const double* z, int64_t m, double k);
inline SparseKResult sparsek_cpu(const std::vector<double>& z, double k) {
    return sparsek_cpu(z.data(), static_cast<int64_t>(z.size()), k);
}

// The walk of sparsek_cpu on scores already sorted: zs (n) finite, descending, 0 < k < n. Returns
// τ; O(entries above τ). For callers that keep their scores sorted (sparsek_select_cpu).
double sparsek_threshold_sorted(const double* zs, int64_t n, double k);

// Bisection on τ, O(m · iterations): the fallback, and the check of the exact solver. Bisects the
// predicate S(τ) ≥ k down to adjacent doubles, so it converges to the same (largest) τ.
SparseKResult sparsek_bisection_cpu(const double* z, int64_t m, double k);
inline SparseKResult sparsek_bisection_cpu(const std::vector<double>& z, double k) {
    return sparsek_bisection_cpu(z.data(), static_cast<int64_t>(z.size()), k);
}

// Backward (vector–Jacobian product). p: (m) the forward output; gradP: (m) ∂L/∂p.
// Returns ∂L/∂z: on F = {0 < p < 1}, gradP_j − mean_F(gradP); zero elsewhere (k is held fixed).
// Why: on F, p_j = z_j − τ and Σ_F p is pinned to k − |{p = 1}|, so ∂τ/∂z_i = 1/|F| for i ∈ F
// and 0 otherwise; the Jacobian is the centring projection on F, which is symmetric.
// Breakpoints (p_j exactly 0 or 1, where p is not differentiable) count as outside F: the
// one-sided derivative that keeps saturated and dropped entries fixed. F = ∅ (saturated, k = 0,
// k ≥ m_f, or τ on a flat interval) gives a zero gradient.
std::vector<double> sparsek_backward_cpu(const std::vector<double>& p, const std::vector<double>& gradP);

// Generation with O(k) selection state: the hard top-k of a growing stream of keys.
//
// In causal SparseK attention query i selects among the keys before its local window,
// 0..i−w, and that candidate set only grows (query i+1 adds key i−w+1). A key outside the k
// largest scores of a set stays outside for every superset, so a generator never needs an evicted
// key again: a min-heap of k (score, index) entries is the whole selection state, and with the w
// keys of the local window (a ring buffer) a head keeps O(k + w) keys instead of O(T).
//
// Relation to the soft mask: for integer k, with p = SPARSEK(z, k),
//   {p_j = 1}  ⊆  hard top-k of z  ⊆  {p_j > 0},
// because at most k entries can be 1 and at least k must be non-zero (Σp = k, p ≤ 1). The heap
// therefore reproduces the soft mask exactly when it is saturated (0/1: scores of the selected
// keys at least 1 above the rest), and otherwise keeps its k largest entries; the fractional tail
// past the k-th key and τ itself depend on every candidate and are what constant-memory
// generation gives up. This class is the hard top-k part only.
//
// Ties: a key replaces the heap minimum only with a strictly larger score, or an equal score and a
// smaller index (so "top-k" is by score, then by earlier position). Not thread-safe (one per head).
class SparseKStreamingSelector {
public:
    explicit SparseKStreamingSelector(int64_t k);

    // Offers key `index` with finite score `score`; returns the index that left the selection
    // (the offered key itself when it did not make it, or −1 when nothing left).
    int64_t push(int64_t index, double score);

    int64_t size() const { return static_cast<int64_t>(m_heap.size()); }
    int64_t capacity() const { return m_k; }
    std::vector<int64_t> selected() const;  // the selected key indices, ascending

private:
    struct Entry {
        double score;
        int64_t index;
    };
    // Heap order: the entry that should leave first on top.
    static bool leavesBefore(const Entry& a, const Entry& b) {
        return a.score < b.score || (a.score == b.score && a.index > b.index);
    }
    int64_t m_k;
    std::vector<Entry> m_heap;  // at most m_k entries
};

}  // namespace spanscope
