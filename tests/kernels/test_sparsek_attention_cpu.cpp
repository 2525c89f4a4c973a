// SparseK attention CPU reference against naive masked attention, and its bookkeeping.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <limits>
#include <random>
#include <stdexcept>
#include <vector>

#include "engine/pattern.h"
#include "kernels/sparsek_attention_cpu.h"

using namespace spanscope;

namespace {

struct Head {
    int64_t T, D;
    std::vector<float> q, k, v, u;
};

Head randomHead(int64_t T, int64_t D, uint32_t seed) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> nd;
    Head h{T, D, {}, {}, {}, {}};
    for (auto* x : {&h.q, &h.k, &h.v}) {
        x->resize(static_cast<size_t>(T * D));
        for (float& e : *x) e = nd(rng);
    }
    h.u.resize(static_cast<size_t>(T));
    for (float& e : h.u) e = nd(rng);
    return h;
}

// Textbook attention with a 0/1 rule allowed(i, j): (T, D) output, in double.
std::vector<double> naiveAttention(const Head& h, const std::function<bool(int64_t, int64_t)>& allowed) {
    const double scale = 1.0 / std::sqrt(static_cast<double>(h.D));
    std::vector<double> out(static_cast<size_t>(h.T * h.D), 0.0);
    for (int64_t i = 0; i < h.T; ++i) {
        std::vector<double> s(static_cast<size_t>(i + 1), -std::numeric_limits<double>::infinity());
        double mx = -std::numeric_limits<double>::infinity();
        for (int64_t j = 0; j <= i; ++j) {
            if (!allowed(i, j)) continue;
            double d = 0;
            for (int64_t c = 0; c < h.D; ++c) d += double(h.q[i * h.D + c]) * h.k[j * h.D + c];
            s[j] = scale * d;
            mx = std::max(mx, s[j]);
        }
        double z = 0;
        for (double& x : s) z += (x = std::exp(x - mx));
        for (int64_t j = 0; j <= i; ++j)
            for (int64_t c = 0; c < h.D; ++c) out[i * h.D + c] += s[j] / z * h.v[j * h.D + c];
    }
    return out;
}

void expectClose(const std::vector<float>& got, const std::vector<double>& want, const char* what) {
    ASSERT_EQ(got.size(), want.size());
    for (size_t n = 0; n < got.size(); ++n)
        ASSERT_NEAR(got[n], want[n], 2e-5 * (1 + std::abs(want[n]))) << what << " element " << n;
}

}  // namespace

TEST(SparseKAttention, KZeroEqualsWindowAttentionT37D8W5) {
    Head h = randomHead(37, 8, 1);
    auto r = sparsek_attention_cpu(h.q, h.k, h.v, h.u, h.T, h.D, {0.0, 5});
    expectClose(r.out, naiveAttention(h, [](int64_t i, int64_t j) { return i - j < 5; }), "out");
    EXPECT_TRUE(r.selectedKeys.empty());
    EXPECT_EQ(r.attendedPairs(), LayerSpec::window(5).attendedPairs(37));
}

TEST(SparseKAttention, KAtLeastAllCandidatesEqualsFullCausalAttentionT41D16W4) {
    // k >= T − w: every candidate of every query has mask 1, whatever the scores.
    Head h = randomHead(41, 16, 2);
    for (double k : {37.0, 1e9}) {
        auto r = sparsek_attention_cpu(h.q, h.k, h.v, h.u, h.T, h.D, {k, 4});
        expectClose(r.out, naiveAttention(h, [](int64_t, int64_t) { return true; }), "out");
        for (float m : r.selectedMask) EXPECT_EQ(m, 1.0f);
        EXPECT_EQ(r.attendedPairs(), 41 * 42 / 2);
    }
}

TEST(SparseKAttention, SeparatedRisingScoresSelectTheNewestKeysAndEqualWindowWPlusKT50D8K3W6) {
    // u_j = 10 j: the k newest candidates are more than 1 above the rest, so SPARSEK saturates to
    // a 0/1 mask of keys i−w−k+1 .. i−w: sparsek:3/6 is then window:9.
    Head h = randomHead(50, 8, 3);
    for (int64_t j = 0; j < h.T; ++j) h.u[j] = 10.0f * static_cast<float>(j);
    auto r = sparsek_attention_cpu(h.q, h.k, h.v, h.u, h.T, h.D, {3.0, 6});
    expectClose(r.out, naiveAttention(h, [](int64_t i, int64_t j) { return i - j < 9; }), "out");
    for (float m : r.selectedMask) EXPECT_EQ(m, 1.0f);
    EXPECT_EQ(r.attendedPairs(), sparsek_attended_pairs(50, 3, 6));
}

TEST(SparseKAttention, SeparatedFallingScoresSelectTheFirstKeysAsSinksT50D8K2W7) {
    // u_j = −10 j: the oldest keys win: attention sinks 0..1 plus the window.
    Head h = randomHead(50, 8, 4);
    for (int64_t j = 0; j < h.T; ++j) h.u[j] = -10.0f * static_cast<float>(j);
    auto r = sparsek_attention_cpu(h.q, h.k, h.v, h.u, h.T, h.D, {2.0, 7});
    expectClose(r.out, naiveAttention(h, [](int64_t i, int64_t j) { return i - j < 7 || j < 2; }), "out");
    for (int64_t i = 9; i < h.T; ++i) {  // queries with at least two candidates
        ASSERT_EQ(r.selectedOffsets[i + 1] - r.selectedOffsets[i], 2) << i;
        EXPECT_EQ(r.selectedKeys[r.selectedOffsets[i]], 0);
        EXPECT_EQ(r.selectedKeys[r.selectedOffsets[i] + 1], 1);
    }
}

TEST(SparseKAttention, SoftMaskRowsSumToOneAndMaskSumsToKT67D8K2p5W5) {
    Head h = randomHead(67, 8, 5);
    SparseKAttentionParams params{2.5, 5};
    params.probabilities = true;
    auto r = sparsek_attention_cpu(h.q, h.k, h.v, h.u, h.T, h.D, params);
    ASSERT_EQ(r.selectedOffsets.size(), 68u);
    for (int64_t i = 0; i < h.T; ++i) {
        double rowSum = 0, maskSum = 0;
        for (int64_t j = 0; j < h.T; ++j) {
            const float a = r.probs[i * h.T + j];
            ASSERT_TRUE(j <= i || a == 0.0f) << "causal: i=" << i << " j=" << j;
            rowSum += a;
        }
        EXPECT_NEAR(rowSum, 1.0, 1e-5) << i;
        for (int64_t n = r.selectedOffsets[i]; n < r.selectedOffsets[i + 1]; ++n) {
            EXPECT_LE(r.selectedKeys[n], i - 5) << "selected keys lie before the window";
            EXPECT_GT(r.selectedMask[n], 0.0f);
            EXPECT_LE(r.selectedMask[n], 1.0f);
            maskSum += r.selectedMask[n];
        }
        EXPECT_NEAR(maskSum, std::min(2.5, std::max(0.0, double(i - 4))), 1e-5) << i;
        if (i < 5) {
            EXPECT_EQ(r.tau[i], -std::numeric_limits<double>::infinity()) << "no candidates";
        }
    }
    // The gating rule: a_ij / a_ii = m_ij exp(s_ij − s_ii) for a selected key.
    const int64_t i = 60, n = r.selectedOffsets[i], j = r.selectedKeys[n];
    double sij = 0, sii = 0;
    for (int64_t c = 0; c < h.D; ++c) {
        sij += double(h.q[i * h.D + c]) * h.k[j * h.D + c];
        sii += double(h.q[i * h.D + c]) * h.k[i * h.D + c];
    }
    const double ratio = r.selectedMask[n] * std::exp((sij - sii) / std::sqrt(8.0));
    EXPECT_NEAR(r.probs[i * h.T + j] / r.probs[i * h.T + i], ratio, 1e-4 * ratio);
}

TEST(SparseKAttention, BisectionSolverGivesTheSameOutputT33D4K3W3) {
    Head h = randomHead(33, 4, 6);
    SparseKAttentionParams exact{3.0, 3}, bisect{3.0, 3};
    bisect.bisection = true;
    auto a = sparsek_attention_cpu(h.q, h.k, h.v, h.u, h.T, h.D, exact);
    auto b = sparsek_attention_cpu(h.q, h.k, h.v, h.u, h.T, h.D, bisect);
    for (size_t n = 0; n < a.out.size(); ++n) ASSERT_NEAR(a.out[n], b.out[n], 1e-6) << n;
    for (size_t n = 0; n < a.lse.size(); ++n) ASSERT_NEAR(a.lse[n], b.lse[n], 1e-6) << n;
}

TEST(SparseKAttention, AttendedPairsMatchThePatternCostModel) {
    for (int64_t T : {1, 5, 100, 1000})
        for (auto [k, w] : {std::pair<int64_t, int64_t>{0, 1}, {4, 8}, {64, 256}, {3, 1}})
            EXPECT_EQ(sparsek_attended_pairs(T, k, w), LayerSpec::sparseK(k, w).attendedPairs(T))
                << "T=" << T << " k=" << k << " w=" << w;
}

TEST(SparseKAttention, BadInputsThrow) {
    Head h = randomHead(8, 4, 7);
    EXPECT_THROW(sparsek_attention_cpu(h.q, h.k, h.v, h.u, h.T, h.D, {1.0, 0}), std::invalid_argument);
    EXPECT_THROW(sparsek_attention_cpu(h.q, h.k, h.v, h.u, h.T, h.D, {-1.0, 2}), std::invalid_argument);
    EXPECT_THROW(sparsek_attention_cpu(h.q, h.k, h.v, h.u, 9, h.D, {1.0, 2}), std::invalid_argument);
    h.u[0] = std::nanf("");
    EXPECT_THROW(sparsek_attention_cpu(h.q, h.k, h.v, h.u, h.T, h.D, {1.0, 2}), std::invalid_argument);
}

// The streaming selection (active set, τ non-decreasing) against SPARSEK solved on every prefix by
// the reference: same keys, same mask values, same τ, on fresh random scores, with ties, −inf
// scores, fractional k, k = 0 and k above the candidates.
TEST(SparseKSelection, StreamingEqualsSparsekOnEveryPrefix) {
    std::mt19937 seeds(std::random_device{}());
    const double inf = std::numeric_limits<double>::infinity();
    for (int64_t T : {1, 2, 9, 64, 301})
        for (int64_t w : {1, 3, 17})
            for (double topK : {0.0, 1.0, 2.5, 7.0, 40.0, inf})
                for (int variant = 0; variant < 3; ++variant) {
                    const uint32_t seed = seeds();
                    Head h = randomHead(T, 4, seed);
                    std::mt19937 rng(seed + 1);
                    // 0: spread normal scores; 1: a few values only (ties); 2: some −inf, scaled up (0/1 masks).
                    for (float& x : h.u) {
                        if (variant == 1) x = static_cast<float>(rng() % 4) * 0.5f;
                        if (variant == 2) x = rng() % 5 == 0 ? -std::numeric_limits<float>::infinity() : 4.0f * x;
                    }
                    SparseKAttentionParams p;
                    p.topK = topK;
                    p.window = w;
                    const SparseKAttentionResult ref = sparsek_attention_cpu(h.q, h.k, h.v, h.u, T, h.D, p);
                    const SparseKSelection s = sparsek_select_cpu(h.u.data(), T, topK, w);
                    const std::string where = "T " + std::to_string(T) + " w " + std::to_string(w) + " k " +
                                              std::to_string(topK) + " variant " + std::to_string(variant) + " seed " +
                                              std::to_string(seed);
                    ASSERT_EQ(s.offsets.size(), ref.selectedOffsets.size()) << where;
                    for (int64_t i = 0; i < T; ++i) {
                        const auto a = static_cast<size_t>(i);
                        // Entries within rounding of τ may fall on either side: compare the masks as
                        // dense rows, which agree to rounding either way.
                        std::vector<double> got(static_cast<size_t>(T), 0.0), want(static_cast<size_t>(T), 0.0);
                        for (int64_t n = s.offsets[a]; n < s.offsets[a + 1]; ++n)
                            got[static_cast<size_t>(s.keys[static_cast<size_t>(n)])] = s.mask[static_cast<size_t>(n)];
                        for (int64_t n = ref.selectedOffsets[a]; n < ref.selectedOffsets[a + 1]; ++n)
                            want[static_cast<size_t>(ref.selectedKeys[static_cast<size_t>(n)])] = ref.selectedMask[static_cast<size_t>(n)];
                        for (int64_t j = 0; j < T; ++j)
                            ASSERT_NEAR(got[static_cast<size_t>(j)], want[static_cast<size_t>(j)], 1e-5) << where << " query " << i << " key " << j;
                        for (int64_t n = s.offsets[a]; n < s.offsets[a + 1]; ++n)
                            ASSERT_LE(s.keys[static_cast<size_t>(n)], i - w) << where << ": only keys before the window";
                        if (std::isinf(ref.tau[a]) || topK == 0) EXPECT_EQ(s.tau[a], ref.tau[a]) << where << " query " << i;
                        else EXPECT_NEAR(s.tau[a], ref.tau[a], 1e-9 * (1 + std::abs(ref.tau[a]))) << where << " query " << i;
                    }
                }
}

TEST(SparseKSelection, BadInputsThrow) {
    std::vector<float> u{0.f, 1.f, std::numeric_limits<float>::quiet_NaN(), 2.f};
    EXPECT_THROW(sparsek_select_cpu(u.data(), 4, 1.0, 1), std::invalid_argument);  // NaN score
    u[2] = std::numeric_limits<float>::infinity();
    EXPECT_THROW(sparsek_select_cpu(u.data(), 4, 1.0, 1), std::invalid_argument);  // +inf score
    u[2] = 0.f;
    EXPECT_THROW(sparsek_select_cpu(u.data(), 4, -1.0, 1), std::invalid_argument);
    EXPECT_THROW(sparsek_select_cpu(u.data(), 4, 1.0, 0), std::invalid_argument);
    EXPECT_NO_THROW(sparsek_select_cpu(u.data(), 4, 1.0, 1));
}
