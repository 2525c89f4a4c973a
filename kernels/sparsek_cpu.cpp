#include "kernels/sparsek_cpu.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <stdexcept>
#include <string>

namespace spanscope {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

// Checks the inputs and returns the finite scores sorted in descending order.
std::vector<double> sortedFiniteScores(const double* z, int64_t m, double k) {
    if (std::isnan(k) || k < 0) throw std::invalid_argument("sparsek: k must be >= 0, got " + std::to_string(k));
    if (m < 0) throw std::invalid_argument("sparsek: negative length " + std::to_string(m));
    std::vector<double> zs;
    zs.reserve(static_cast<size_t>(m));
    for (int64_t j = 0; j < m; ++j) {
        if (std::isnan(z[j]) || z[j] == kInf)
            throw std::invalid_argument("sparsek: score " + std::to_string(j) + " is " + std::to_string(z[j]) +
                                        " (NaN and +inf are not scores)");
        if (z[j] != -kInf) zs.push_back(z[j]);
    }
    std::sort(zs.begin(), zs.end(), std::greater<double>());
    return zs;
}

// The cases both solvers share: no finite score, k = 0, k >= m_f. Fills r and returns true when
// one of them applies.
bool trivialCase(const double* z, int64_t m, double k, const std::vector<double>& zs, SparseKResult& r) {
    const auto n = static_cast<double>(zs.size());
    r.p.assign(static_cast<size_t>(m), 0.0);
    if (zs.empty()) {
        r.tau = -kInf;
        return true;
    }
    if (k == 0) {
        r.tau = zs.front();
        return true;
    }
    if (k >= n) {
        r.tau = zs.back() - 1;
        for (int64_t j = 0; j < m; ++j) r.p[static_cast<size_t>(j)] = z[j] == -kInf ? 0.0 : 1.0;
        return true;
    }
    return false;
}

void fillMask(const double* z, int64_t m, SparseKResult& r) {
    for (int64_t j = 0; j < m; ++j)
        r.p[static_cast<size_t>(j)] = z[j] == -kInf ? 0.0 : std::clamp(z[j] - r.tau, 0.0, 1.0);
}

}  // namespace

// Walk τ from +inf downwards. With zs sorted descending, entries enter the free set F in order
// 0, 1, 2, ... (at τ = zs[a], p_a starts to grow) and leave it into the saturated set in the same
// order (at τ = zs[b] − 1, p_b reaches 1). Between two events U = [0, b), F = [b, a) and
//   S(τ) = b + Σ_{j∈F} zs[j] − |F|·τ,
// so once S at the next event reaches k, the root is τ = (b + Σ_F zs − k) / |F|.
double sparsek_threshold_sorted(const double* zs, int64_t n, double k) {
    int64_t a = 0, b = 0;     // entered, saturated
    double sumF = 0;          // Σ zs[b..a), kept incrementally to find the piece
    double current = kInf;    // τ of the last event processed
    for (;;) {
        // Here 0 < k < n, so the last entry's saturation (where S = n) stops the walk: b < n.
        const bool enter = a < n && zs[a] >= zs[b] - 1;
        const double next = enter ? zs[a] : zs[b] - 1;
        const int64_t free = a - b;
        if (free > 0 && b + sumF - static_cast<double>(free) * next >= k) {
            double exactSum = 0;  // re-summed, so the rounding of the running sum does not stay in τ
            for (int64_t j = b; j < a; ++j) exactSum += zs[j];
            return std::clamp((static_cast<double>(b) + exactSum - k) / static_cast<double>(free), next, current);
        }
        if (enter) sumF += zs[a++];
        else sumF -= zs[b++];
        current = next;
    }
}

SparseKResult sparsek_cpu(const double* z, int64_t m, double k) {
    SparseKResult r;
    const std::vector<double> zs = sortedFiniteScores(z, m, k);
    if (trivialCase(z, m, k, zs, r)) return r;
    r.tau = sparsek_threshold_sorted(zs.data(), static_cast<int64_t>(zs.size()), k);
    fillMask(z, m, r);
    return r;
}

SparseKResult sparsek_bisection_cpu(const double* z, int64_t m, double k) {
    SparseKResult r;
    const std::vector<double> zs = sortedFiniteScores(z, m, k);
    if (trivialCase(z, m, k, zs, r)) return r;
    auto sum = [&](double tau) {
        double s = 0;
        for (double x : zs) s += std::clamp(x - tau, 0.0, 1.0);
        return s;
    };
    // S(lo) = m_f > k and S(hi) = 0 < k; keep S(lo) >= k > S(hi) until lo and hi are adjacent.
    double lo = zs.back() - 1, hi = zs.front();
    for (int it = 0; it < 4096; ++it) {
        const double mid = lo + 0.5 * (hi - lo);
        if (mid <= lo || mid >= hi) break;
        (sum(mid) >= k ? lo : hi) = mid;
    }
    r.tau = lo;
    fillMask(z, m, r);
    return r;
}

std::vector<double> sparsek_backward_cpu(const std::vector<double>& p, const std::vector<double>& gradP) {
    if (p.size() != gradP.size())
        throw std::invalid_argument("sparsek backward: p has " + std::to_string(p.size()) + " entries, gradP " +
                                    std::to_string(gradP.size()));
    double sum = 0;
    int64_t free = 0;
    for (size_t j = 0; j < p.size(); ++j)
        if (p[j] > 0 && p[j] < 1) {
            sum += gradP[j];
            ++free;
        }
    std::vector<double> gradZ(p.size(), 0.0);
    if (free == 0) return gradZ;
    const double mean = sum / static_cast<double>(free);
    for (size_t j = 0; j < p.size(); ++j)
        if (p[j] > 0 && p[j] < 1) gradZ[j] = gradP[j] - mean;
    return gradZ;
}

// ---- SparseKStreamingSelector -------------------------------------------------------------------

SparseKStreamingSelector::SparseKStreamingSelector(int64_t k) : m_k(k) {
    if (k < 0) throw std::invalid_argument("sparsek selector: k must be >= 0, got " + std::to_string(k));
    m_heap.reserve(static_cast<size_t>(k));
}

int64_t SparseKStreamingSelector::push(int64_t index, double score) {
    if (!std::isfinite(score))
        throw std::invalid_argument("sparsek selector: score of key " + std::to_string(index) + " is not finite");
    // std heaps keep the comparator's largest on top; ordering by "leaves later" puts the entry
    // that leaves first there.
    auto comp = [](const Entry& x, const Entry& y) { return leavesBefore(y, x); };
    const Entry e{score, index};
    if (size() < m_k) {
        m_heap.push_back(e);
        std::push_heap(m_heap.begin(), m_heap.end(), comp);
        return -1;
    }
    if (m_k == 0 || !leavesBefore(m_heap.front(), e)) return index;  // not better than the minimum
    std::pop_heap(m_heap.begin(), m_heap.end(), comp);
    const int64_t evicted = m_heap.back().index;
    m_heap.back() = e;
    std::push_heap(m_heap.begin(), m_heap.end(), comp);
    return evicted;
}

std::vector<int64_t> SparseKStreamingSelector::selected() const {
    std::vector<int64_t> out;
    out.reserve(m_heap.size());
    for (const Entry& e : m_heap) out.push_back(e.index);
    std::sort(out.begin(), out.end());
    return out;
}

}  // namespace spanscope
