// SPARSEK operator: both solvers, the backward and the streaming top-k selector.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <random>
#include <sstream>
#include <stdexcept>
#include <vector>

#include "kernels/sparsek_cpu.h"

using namespace spanscope;

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

std::vector<double> randomScores(int64_t m, uint32_t seed, double spread = 2.0) {
    std::mt19937 rng(seed);
    std::normal_distribution<double> dist(0.0, spread);
    std::vector<double> z(static_cast<size_t>(m));
    for (double& x : z) x = dist(rng);
    return z;
}

double sum(const std::vector<double>& x) { return std::accumulate(x.begin(), x.end(), 0.0); }

struct Case {
    int64_t m;
    double k;
    uint32_t seed;
};

std::string caseName(const testing::TestParamInfo<Case>& info) {
    std::ostringstream s;
    s << "m" << info.param.m << "_k" << info.param.k << "_seed" << info.param.seed;
    std::string n = s.str();
    std::replace(n.begin(), n.end(), '.', 'p');
    return n;
}

class SparseKRandom : public testing::TestWithParam<Case> {};

}  // namespace

TEST_P(SparseKRandom, SumIsKMaskInUnitIntervalAndExactAgreesWithBisection) {
    const Case c = GetParam();
    const auto z = randomScores(c.m, c.seed);
    const SparseKResult exact = sparsek_cpu(z, c.k);
    const SparseKResult bisect = sparsek_bisection_cpu(z, c.k);
    const double want = std::min<double>(c.k, static_cast<double>(c.m));
    EXPECT_NEAR(sum(exact.p), want, 1e-9) << "m=" << c.m << " k=" << c.k << " seed=" << c.seed;
    EXPECT_NEAR(sum(bisect.p), want, 1e-9);
    int64_t free = 0;
    for (size_t j = 0; j < z.size(); ++j) {
        ASSERT_GE(exact.p[j], 0.0) << j;
        ASSERT_LE(exact.p[j], 1.0) << j;
        ASSERT_NEAR(exact.p[j], bisect.p[j], 1e-9) << "j=" << j << " z=" << z[j];
        // p = clip(z − τ, 0, 1) with the returned τ.
        ASSERT_DOUBLE_EQ(exact.p[j], std::clamp(z[j] - exact.tau, 0.0, 1.0));
        free += exact.p[j] > 0 && exact.p[j] < 1;
    }
    if (free > 0) {
        EXPECT_NEAR(exact.tau, bisect.tau, 1e-9);  // τ is unique when F is not empty
    }
}

INSTANTIATE_TEST_SUITE_P(RaggedSizes, SparseKRandom,
                         testing::Values(Case{1, 0.5, 1}, Case{1, 1, 2}, Case{2, 0.3, 3}, Case{2, 1, 4},
                                         Case{2, 1.7, 5}, Case{3, 1, 6}, Case{3, 2.5, 7}, Case{17, 1, 8},
                                         Case{17, 4, 9}, Case{17, 6.25, 10}, Case{17, 16.9, 11},
                                         Case{257, 32, 12}, Case{257, 0.01, 13}, Case{1000, 64, 14},
                                         Case{1000, 100.5, 15}, Case{1000, 999, 16}, Case{4099, 256, 17}),
                         caseName);

TEST(SparseK, RandomScoresWithManyTiesAndMinusInfAgreeBetweenSolvers) {
    // Scores on a coarse grid (so many ties, and ties exactly one apart), a third of them −inf.
    for (uint32_t seed = 200; seed < 260; ++seed) {
        std::mt19937 rng(seed);
        const int64_t m = 1 + static_cast<int64_t>(rng() % 60);
        std::vector<double> z(static_cast<size_t>(m));
        int64_t finite = 0;
        for (double& x : z) {
            x = rng() % 3 == 0 ? -kInf : 0.5 * static_cast<double>(static_cast<int>(rng() % 9) - 4);
            finite += x != -kInf;
        }
        const double k = rng() % 2 ? static_cast<double>(rng() % 8) : 0.25 * static_cast<double>(rng() % 32);
        const auto a = sparsek_cpu(z, k), b = sparsek_bisection_cpu(z, k);
        EXPECT_NEAR(sum(a.p), std::min<double>(k, static_cast<double>(finite)), 1e-12) << "seed=" << seed << " k=" << k;
        for (size_t j = 0; j < z.size(); ++j) {
            ASSERT_NEAR(a.p[j], b.p[j], 1e-12) << "seed=" << seed << " k=" << k << " j=" << j;
            ASSERT_TRUE(z[j] != -kInf || a.p[j] == 0.0) << "−inf selected: j=" << j;
            for (size_t l = 0; l < z.size(); ++l)
                ASSERT_TRUE(z[l] != z[j] || a.p[l] == a.p[j]) << "tied scores, different mask: " << l << ", " << j;
        }
    }
}

TEST(SparseK, GradientMatchesCentralFiniteDifferencesOfARandomLinearLoss) {
    // L = cᵀ SPARSEK(z, k); away from breakpoints p is linear in z, so central differences are
    // exact up to rounding.
    for (uint32_t seed = 100; seed < 120; ++seed) {
        std::mt19937 rng(seed);
        const int64_t m = 3 + static_cast<int64_t>(rng() % 40);
        const double k = 1 + std::uniform_real_distribution<double>(0, static_cast<double>(m) - 2)(rng);
        auto z = randomScores(m, seed, 1.0);
        std::vector<double> c(static_cast<size_t>(m));
        std::normal_distribution<double> nd;
        for (double& x : c) x = nd(rng);
        const SparseKResult r = sparsek_cpu(z, k);
        const auto g = sparsek_backward_cpu(r.p, c);
        const double h = 1e-6;
        for (int64_t j = 0; j < m; ++j) {
            auto zp = z, zm = z;
            zp[static_cast<size_t>(j)] += h;
            zm[static_cast<size_t>(j)] -= h;
            auto lossOf = [&](const std::vector<double>& x) {
                auto p = sparsek_cpu(x, k).p;
                return std::inner_product(p.begin(), p.end(), c.begin(), 0.0);
            };
            const double fd = (lossOf(zp) - lossOf(zm)) / (2 * h);
            EXPECT_NEAR(g[static_cast<size_t>(j)], fd, 1e-6) << "seed=" << seed << " m=" << m << " k=" << k << " j=" << j;
        }
    }
}

TEST(SparseK, GradientIsZeroOutsideTheFreeSetAndSumsToZero) {
    const auto z = randomScores(50, 7);
    const SparseKResult r = sparsek_cpu(z, 10);
    const auto g = sparsek_backward_cpu(r.p, randomScores(50, 8));
    for (size_t j = 0; j < z.size(); ++j)
        if (r.p[j] == 0 || r.p[j] == 1) {
            EXPECT_EQ(g[j], 0.0) << j;
        }
    EXPECT_NEAR(sum(g), 0.0, 1e-12);  // k is fixed: the mask's total cannot move
    EXPECT_THROW(sparsek_backward_cpu(r.p, {1.0}), std::invalid_argument);
}

TEST(SparseK, KAtLeastMSelectsEverythingAndKZeroSelectsNothing) {
    const std::vector<double> z{3, -1, 0.5, 2};
    for (double k : {4.0, 4.5, 100.0, kInf}) {
        const auto r = sparsek_cpu(z, k);
        EXPECT_EQ(r.p, std::vector<double>(4, 1.0)) << k;
        EXPECT_DOUBLE_EQ(r.tau, -2.0);  // min z − 1
        EXPECT_EQ(sparsek_bisection_cpu(z, k).p, r.p);
        EXPECT_EQ(sparsek_backward_cpu(r.p, {1, 2, 3, 4}), std::vector<double>(4, 0.0));
    }
    const auto none = sparsek_cpu(z, 0);
    EXPECT_EQ(none.p, std::vector<double>(4, 0.0));
    EXPECT_DOUBLE_EQ(none.tau, 3.0);  // max z
    EXPECT_EQ(sparsek_cpu(std::vector<double>{}, 2).p.size(), 0u);
}

TEST(SparseK, NegativeOrNanKAndNanOrPlusInfScoresThrow) {
    const std::vector<double> z{1, 2, 3};
    EXPECT_THROW(sparsek_cpu(z, -1), std::invalid_argument);
    EXPECT_THROW(sparsek_cpu(z, std::nan("")), std::invalid_argument);
    EXPECT_THROW(sparsek_cpu(std::vector<double>{1, std::nan(""), 3}, 1), std::invalid_argument);
    EXPECT_THROW(sparsek_bisection_cpu(std::vector<double>{1, kInf, 3}, 1), std::invalid_argument);
}

TEST(SparseK, MinusInfScoresAreNeverSelected) {
    const std::vector<double> z{-kInf, 0.2, -kInf, 0.1, 5};
    const auto r = sparsek_cpu(z, 2);
    EXPECT_EQ(r.p[0], 0.0);
    EXPECT_EQ(r.p[2], 0.0);
    EXPECT_NEAR(sum(r.p), 2.0, 1e-12);
    EXPECT_EQ(r.p[4], 1.0);
    EXPECT_NEAR(r.p[1] - r.p[3], 0.1, 1e-12);  // both free, slide together
    // k beyond the finite scores: all finite ones selected, Σp = m_f = 3.
    const auto all = sparsek_cpu(z, 4);
    EXPECT_EQ(all.p, (std::vector<double>{0, 1, 0, 1, 1}));
    const auto onlyInf = sparsek_cpu(std::vector<double>{-kInf, -kInf}, 1);
    EXPECT_EQ(onlyInf.p, (std::vector<double>{0, 0}));
    EXPECT_EQ(onlyInf.tau, -kInf);
}

TEST(SparseK, AllEqualScoresShareTheBudgetEvenly) {
    for (double k : {0.5, 1.0, 3.0, 6.99}) {
        const std::vector<double> z(7, 1.25);
        for (const auto& r : {sparsek_cpu(z, k), sparsek_bisection_cpu(z, k)})
            for (double p : r.p) EXPECT_NEAR(p, k / 7, 1e-12) << "k=" << k;
    }
}

TEST(SparseK, TiedScoresGetEqualMaskAtTheBoundary) {
    // Two scores tie for the k-th place: they split what is left of the budget.
    const std::vector<double> z{10, 0, 0, -10};
    const auto r = sparsek_cpu(z, 2);
    EXPECT_EQ(r.p[0], 1.0);
    EXPECT_DOUBLE_EQ(r.p[1], 0.5);
    EXPECT_DOUBLE_EQ(r.p[2], 0.5);
    EXPECT_EQ(r.p[3], 0.0);
    const auto b = sparsek_bisection_cpu(z, 2).p;
    for (size_t j = 0; j < z.size(); ++j) EXPECT_NEAR(b[j], r.p[j], 1e-12) << j;
}

TEST(SparseK, SeparatedScoresGiveTheHardTopKAndTheLargestTau) {
    // Gaps > 1: p is 0/1, τ is not unique (any τ in [3, 4] works); both solvers return 4.
    const std::vector<double> z{5, 1, 9, 3};
    for (const auto& r : {sparsek_cpu(z, 2), sparsek_bisection_cpu(z, 2)}) {
        EXPECT_EQ(r.p, (std::vector<double>{1, 0, 1, 0}));
        EXPECT_NEAR(r.tau, 4.0, 1e-12);
    }
}

TEST(SparseKStreamingSelector, MatchesTheBatchHardTopKAtEveryStepWithDistinctScores) {
    for (int64_t k : {1, 4, 16}) {
        const auto u = randomScores(300, 40 + static_cast<uint32_t>(k));  // distinct with probability 1
        SparseKStreamingSelector sel(k);
        for (int64_t t = 0; t < static_cast<int64_t>(u.size()); ++t) {
            sel.push(t, u[static_cast<size_t>(t)]);
            ASSERT_LE(sel.size(), k);
            // Batch: the k largest of u[0..t].
            std::vector<int64_t> order(static_cast<size_t>(t + 1));
            std::iota(order.begin(), order.end(), 0);
            std::sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return u[a] > u[b]; });
            order.resize(static_cast<size_t>(std::min<int64_t>(k, t + 1)));
            std::sort(order.begin(), order.end());
            ASSERT_EQ(sel.selected(), order) << "k=" << k << " after key " << t;
            // The soft mask brackets the hard top-k: {p = 1} ⊆ top-k ⊆ {p > 0}.
            const auto p = sparsek_cpu(u.data(), t + 1, static_cast<double>(k)).p;
            for (int64_t j = 0; j <= t; ++j) {
                const bool inTop = std::binary_search(order.begin(), order.end(), j);
                const double pj = p[static_cast<size_t>(j)];
                ASSERT_TRUE(pj < 1 || inTop) << "k=" << k << " t=" << t << " j=" << j << ": p = 1 outside the top-k";
                ASSERT_TRUE(pj > 0 || !inTop) << "k=" << k << " t=" << t << " j=" << j << ": top-k key with p = 0";
            }
        }
    }
}

TEST(SparseKStreamingSelector, ReportsEvictionsAndPrefersEarlierKeysOnTies) {
    SparseKStreamingSelector sel(2);
    EXPECT_EQ(sel.push(0, 1.0), -1);
    EXPECT_EQ(sel.push(1, 3.0), -1);
    EXPECT_EQ(sel.push(2, 0.5), 2);  // not better than the minimum: itself
    EXPECT_EQ(sel.push(3, 2.0), 0);  // evicts key 0
    EXPECT_EQ(sel.push(4, 2.0), 4);  // ties key 3, later: stays out
    EXPECT_EQ(sel.selected(), (std::vector<int64_t>{1, 3}));
    SparseKStreamingSelector none(0);
    EXPECT_EQ(none.push(0, 1.0), 0);
    EXPECT_EQ(none.size(), 0);
    EXPECT_THROW(sel.push(5, kInf), std::invalid_argument);
    EXPECT_THROW(SparseKStreamingSelector(-1), std::invalid_argument);
}
