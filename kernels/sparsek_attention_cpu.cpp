#include "kernels/sparsek_attention_cpu.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <stdexcept>
#include <string>

#include "kernels/sparsek_cpu.h"

namespace spanscope {
namespace {

void checkSize(const std::vector<float>& x, int64_t want, const char* name) {
    if (static_cast<int64_t>(x.size()) != want)
        throw std::invalid_argument(std::string("sparsek attention: ") + name + " has " + std::to_string(x.size()) +
                                    " elements, expected " + std::to_string(want));
}

}  // namespace

SparseKAttentionResult sparsek_attention_cpu(const std::vector<float>& q, const std::vector<float>& k,
                                             const std::vector<float>& v, const std::vector<float>& u,
                                             int64_t T, int64_t D, const SparseKAttentionParams& params) {
    if (T < 0 || D <= 0) throw std::invalid_argument("sparsek attention: bad shape T=" + std::to_string(T) +
                                                     " D=" + std::to_string(D));
    if (params.window < 1)
        throw std::invalid_argument("sparsek attention: window must be >= 1, got " + std::to_string(params.window));
    if (std::isnan(params.topK) || params.topK < 0)
        throw std::invalid_argument("sparsek attention: k must be >= 0, got " + std::to_string(params.topK));
    checkSize(q, T * D, "q");
    checkSize(k, T * D, "k");
    checkSize(v, T * D, "v");
    checkSize(u, T, "u");
    const int64_t w = params.window;
    const double scale = params.scale > 0 ? params.scale : 1.0 / std::sqrt(static_cast<double>(D));
    const std::vector<double> scores(u.begin(), u.end());  // SPARSEK works in double

    SparseKAttentionResult r;
    r.out.assign(static_cast<size_t>(T * D), 0.0f);
    r.lse.assign(static_cast<size_t>(T), 0.0f);
    r.tau.assign(static_cast<size_t>(T), -std::numeric_limits<double>::infinity());
    r.selectedOffsets.assign(static_cast<size_t>(T + 1), 0);
    if (params.probabilities) r.probs.assign(static_cast<size_t>(T * T), 0.0f);

    std::vector<int64_t> keys;    // attended keys of the current row, ascending
    std::vector<double> logits;   // s_ij + log m_ij
    std::vector<double> acc(static_cast<size_t>(D));
    for (int64_t i = 0; i < T; ++i) {
        keys.clear();
        logits.clear();
        const float* qi = &q[static_cast<size_t>(i * D)];
        auto score = [&](int64_t j) {
            const float* kj = &k[static_cast<size_t>(j * D)];
            double s = 0;
            for (int64_t d = 0; d < D; ++d) s += static_cast<double>(qi[d]) * kj[d];
            return scale * s;
        };
        // Candidates before the window: keys 0..i-w.
        const int64_t candidates = std::max<int64_t>(0, i - w + 1);
        if (candidates > 0) {
            SparseKResult sel = params.bisection ? sparsek_bisection_cpu(scores.data(), candidates, params.topK)
                                                 : sparsek_cpu(scores.data(), candidates, params.topK);
            r.tau[static_cast<size_t>(i)] = sel.tau;
            for (int64_t j = 0; j < candidates; ++j) {
                const double m = sel.p[static_cast<size_t>(j)];
                if (m <= 0) continue;
                keys.push_back(j);
                logits.push_back(score(j) + std::log(m));
                r.selectedKeys.push_back(j);
                r.selectedMask.push_back(static_cast<float>(m));
            }
        }
        r.selectedOffsets[static_cast<size_t>(i + 1)] = static_cast<int64_t>(r.selectedKeys.size());
        // The local window, mask 1.
        for (int64_t j = candidates; j <= i; ++j) {
            keys.push_back(j);
            logits.push_back(score(j));
        }
        r.windowPairs += i - candidates + 1;

        // Softmax over the gated logits; key i is always there, so the row is not empty.
        const double mx = *std::max_element(logits.begin(), logits.end());
        double sum = 0;
        for (double& x : logits) sum += (x = std::exp(x - mx));
        std::fill(acc.begin(), acc.end(), 0.0);
        for (size_t n = 0; n < keys.size(); ++n) {
            const double a = logits[n] / sum;
            const float* vj = &v[static_cast<size_t>(keys[n] * D)];
            for (int64_t d = 0; d < D; ++d) acc[static_cast<size_t>(d)] += a * vj[d];
            if (params.probabilities) r.probs[static_cast<size_t>(i * T + keys[n])] = static_cast<float>(a);
        }
        for (int64_t d = 0; d < D; ++d) r.out[static_cast<size_t>(i * D + d)] = static_cast<float>(acc[static_cast<size_t>(d)]);
        r.lse[static_cast<size_t>(i)] = static_cast<float>(mx + std::log(sum));
    }
    return r;
}

namespace {

template <typename Score>
SparseKSelection selectStreaming(const Score* u, int64_t T, double topK, int64_t window, bool withKeys, int64_t blockRows) {
    if (T < 0) throw std::invalid_argument("sparsek selection: negative length " + std::to_string(T));
    if (window < 1) throw std::invalid_argument("sparsek selection: window must be >= 1, got " + std::to_string(window));
    if (std::isnan(topK) || topK < 0)
        throw std::invalid_argument("sparsek selection: k must be >= 0, got " + std::to_string(topK));
    constexpr double kInf = std::numeric_limits<double>::infinity();
    if (blockRows < 0) throw std::invalid_argument("sparsek selection: blockRows must be >= 0, got " + std::to_string(blockRows));
    SparseKSelection s;
    s.offsets.assign(static_cast<size_t>(T) + 1, 0);
    if (blockRows > 0) s.blockOffsets.assign(static_cast<size_t>((T + blockRows - 1) / blockRows) + 1, 0);
    size_t blockStart = 0;  // where the current block's list begins in blockKeys
    s.tau.assign(static_cast<size_t>(T), -kInf);
    // The active set {z > τ}, sorted by descending score (ties: earlier key first), so the walk
    // starts at the top and dropped entries leave from the back.
    std::vector<double> z;
    std::vector<int32_t> index;
    double tau = -kInf, runningMax = -kInf;
    int64_t finite = 0;  // finite candidates so far
    for (int64_t i = 0; i < T; ++i) {
        const int64_t newKey = i - window;  // C_i = {0..i−w}: key i−w joins at query i
        double newScore = -kInf;
        if (newKey >= 0) {
            const double x = static_cast<double>(u[newKey]);
            if (std::isnan(x) || x == kInf)
                throw std::invalid_argument("sparsek selection: score of key " + std::to_string(newKey) + " is " +
                                            std::to_string(x) + " (NaN and +inf are not scores)");
            newScore = x;
            if (x != -kInf) {
                runningMax = std::max(runningMax, x);
                // τ bounds every later τ only once the budget binds (at least k finite candidates
                // so far, S(τ) = k); before that τ = min z − 1 says nothing and nothing is dropped.
                if (static_cast<double>(finite++) < topK || x > tau) {
                    const auto at = std::upper_bound(z.begin(), z.end(), x, std::greater<double>()) - z.begin();
                    z.insert(z.begin() + at, x);
                    index.insert(index.begin() + at, static_cast<int32_t>(newKey));
                }
            }
        }
        if (finite > 0) {
            const auto n = static_cast<int64_t>(z.size());
            if (topK == 0) tau = runningMax;  // nothing is selected; τ = max z as in sparsek_cpu
            else if (topK >= static_cast<double>(n)) tau = z.back() - 1;
            else tau = sparsek_threshold_sorted(z.data(), n, topK);
            s.tau[static_cast<size_t>(i)] = tau;
            while (!z.empty() && z.back() <= tau) {  // p = 0 now and for every later query
                z.pop_back();
                index.pop_back();
            }
            if (topK > 0) {
                s.selectedPairs += static_cast<int64_t>(z.size());
                if (withKeys)
                    for (size_t n2 = 0; n2 < z.size(); ++n2) {
                        s.keys.push_back(index[n2]);
                        s.mask.push_back(static_cast<float>(std::min(1.0, z[n2] - tau)));
                    }
                // The block's union: the whole active set at its first query, then each key that
                // joins and survives its first query (all others were in the set already).
                if (blockRows > 0) {
                    if (i % blockRows == 0) s.blockKeys.insert(s.blockKeys.end(), index.begin(), index.end());
                    else if (newKey >= 0 && newScore > tau) s.blockKeys.push_back(static_cast<int32_t>(newKey));
                }
            }
        }
        s.offsets[static_cast<size_t>(i) + 1] = static_cast<int64_t>(s.keys.size());
        if (blockRows > 0 && ((i + 1) % blockRows == 0 || i + 1 == T)) {
            std::sort(s.blockKeys.begin() + static_cast<std::ptrdiff_t>(blockStart), s.blockKeys.end());
            blockStart = s.blockKeys.size();
            s.blockOffsets[static_cast<size_t>(i / blockRows) + 1] = static_cast<int64_t>(blockStart);
        }
    }
    return s;
}

}  // namespace

SparseKSelection sparsek_select_cpu(const float* u, int64_t T, double topK, int64_t window, bool withKeys,
                                    int64_t blockRows) {
    return selectStreaming(u, T, topK, window, withKeys, blockRows);
}

SparseKSelection sparsek_select_cpu(const double* u, int64_t T, double topK, int64_t window, bool withKeys,
                                    int64_t blockRows) {
    return selectStreaming(u, T, topK, window, withKeys, blockRows);
}

int64_t sparsek_attended_pairs(int64_t T, int64_t topK, int64_t window) {
    if (T <= 0) return 0;
    if (window < 1 || topK < 0)
        throw std::invalid_argument("sparsek pairs: need window >= 1 and topK >= 0, got " + std::to_string(window) +
                                    ", " + std::to_string(topK));
    int64_t pairs = 0;
    for (int64_t i = 0; i < T; ++i)
        pairs += std::min(i + 1, window) + std::min(topK, std::max<int64_t>(0, i - window + 1));
    return pairs;
}

}  // namespace spanscope
