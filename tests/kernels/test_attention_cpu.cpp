// Blocked span attention (the CPU reference) against the textbook masked softmax, and its
// statistics against direct computations on the full probability matrix.
#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include <cmath>
#include <random>

#include "kernels/attention_cpu.h"
#include "tests/kernels/attention_test_util.h"

using namespace spanscope;

namespace {

struct Case {
    int64_t T;
    int64_t D;
    SpanMask mask;
    int64_t blockElements;  // small values force many query blocks
};

std::string caseName(const Case& c) {
    const char* k = c.mask.kind == MaskKind::Full ? "full" : c.mask.kind == MaskKind::Window ? "window" : "block";
    return std::string(k) + std::to_string(c.mask.span) + (c.mask.prevBlock ? "prev" : "") + "_T" +
           std::to_string(c.T) + "_D" + std::to_string(c.D) + "_budget" + std::to_string(c.blockElements);
}

void PrintTo(const Case& c, std::ostream* os) { *os << caseName(c); }

// Full (H, T, T) probability matrix in fp64, from the naive definition.
at::Tensor naiveProbabilities(const at::Tensor& q, const at::Tensor& k, const SpanMask& mask, double scale) {
    const int64_t T = q.size(2);
    auto s = at::matmul(q[0].to(at::kDouble), k[0].to(at::kDouble).transpose(-1, -2)) * scale;
    auto allowed = at::empty({T, T}, at::kBool);
    auto a = allowed.accessor<bool, 2>();
    for (int64_t i = 0; i < T; ++i)
        for (int64_t j = 0; j < T; ++j) a[i][j] = mask.allows(i, j);
    return at::softmax(s.masked_fill(allowed.logical_not(), -INFINITY), -1);
}

class SpanAttentionCpuTest : public ::testing::TestWithParam<Case> {};

}  // namespace

TEST_P(SpanAttentionCpuTest, OutputAndLseEqualNaiveMaskedSoftmax) {
    const Case c = GetParam();
    at::manual_seed(static_cast<uint64_t>(std::random_device{}()));
    const int64_t B = 2, H = 3;
    auto q = at::randn({B, H, c.T, c.D}), k = at::randn({B, H, c.T, c.D}), v = at::randn({B, H, c.T, c.D});
    const double scale = 1.0 / std::sqrt(static_cast<double>(c.D));
    auto [out, lse] = span_attention_cpu(q, k, v, c.mask, scale);
    auto [refOut, refLse] = naive_attention_reference(q, k, v, c.mask, scale);
    EXPECT_TRUE(at::allclose(out.to(at::kDouble), refOut, 1e-4, 1e-5)) << (out - refOut).abs().max().item<double>();
    EXPECT_TRUE(at::allclose(lse.to(at::kDouble), refLse, 1e-4, 1e-5)) << (lse - refLse).abs().max().item<double>();
}

TEST_P(SpanAttentionCpuTest, StatisticsEqualDirectComputationOnTheFullMatrix) {
    const Case c = GetParam();
    at::manual_seed(static_cast<uint64_t>(std::random_device{}()));
    const int64_t H = 2, T = c.T;
    // Larger logits than randn gives, so rows are peaked and spread, not uniform.
    auto q = at::randn({1, H, T, c.D}) * 2, k = at::randn({1, H, T, c.D}), v = at::randn({1, H, T, c.D});
    const double scale = 1.0 / std::sqrt(static_cast<double>(c.D));
    AttentionStatsOptions o;
    o.beyondSpan = 5;
    o.sinkTokens = 3;
    o.poolSize = 7;
    o.queryRows = {0, T / 2, T - 1};
    o.blockElements = c.blockElements;
    auto [out, lse, st] = span_attention_stats_cpu(q, k, v, c.mask, scale, o);
    auto p = naiveProbabilities(q, k, c.mask, scale);  // (H, T, T)

    auto i = at::arange(T, at::kLong).unsqueeze(1), j = at::arange(T, at::kLong).unsqueeze(0);
    auto dist = (i - j).clamp_min(0).to(at::kDouble);
    // Per-query bin masses sum to one, so the per-head sums equal T.
    EXPECT_TRUE(at::allclose(st.binMass.sum(-1), at::full({H}, static_cast<double>(T), at::kDouble), 1e-5));
    for (int64_t b = 0; b < kNumDistanceBins; ++b) {
        auto inBin = at::zeros({T, T}, at::kDouble);
        for (int64_t ii = 0; ii < T; ++ii)
            for (int64_t jj = 0; jj <= ii; ++jj) inBin[ii][jj] = distanceBin(ii - jj) == b ? 1.0 : 0.0;
        auto want = (p * inBin).sum({1, 2});
        ASSERT_TRUE(at::allclose(st.binMass.select(1, b), want, 1e-4, 1e-6)) << "bin " << b;
    }
    auto xlogx = at::where(p > 0, p * p.log(), at::zeros({}, at::kDouble));
    EXPECT_TRUE(at::allclose(st.entropy, -xlogx.sum({1, 2}), 1e-4, 1e-5));
    EXPECT_TRUE(at::allclose(st.distance, (p * dist).sum({1, 2}), 1e-4, 1e-4));
    auto beyond = (p * (dist >= 5).to(at::kDouble)).sum(-1);  // (H, T)
    EXPECT_TRUE(at::allclose(st.beyondMass, beyond.sum(-1), 1e-4, 1e-5));
    EXPECT_TRUE(at::allclose(st.beyondPerQuery.to(at::kDouble), beyond.mean(0), 1e-4, 1e-5));
    EXPECT_TRUE(at::allclose(st.entropyPerQuery.to(at::kDouble), -xlogx.sum(-1).mean(0), 1e-4, 1e-5));
    EXPECT_TRUE(at::allclose(st.sinkMass, p.slice(2, 0, 3).sum({1, 2}), 1e-4, 1e-5));
    // Pooled map: mean over each query bin of the mass in each key bin; rows sum to 1.
    const int64_t P = std::min<int64_t>(7, T);
    auto bin = at::div(at::arange(T, at::kLong) * P, T, "floor");
    auto onehot = at::one_hot(bin, P).to(at::kDouble);  // (T, P)
    auto pooled = at::matmul(at::matmul(onehot.t(), p), onehot) / onehot.sum(0).view({1, P, 1});
    EXPECT_TRUE(at::allclose(st.pooled.to(at::kDouble), pooled, 1e-4, 1e-5));
    EXPECT_TRUE(at::allclose(st.pooled.sum(-1), at::ones({H, P}), 1e-4));
    for (size_t r = 0; r < o.queryRows.size(); ++r)
        EXPECT_TRUE(at::allclose(st.rows[static_cast<int64_t>(r)].to(at::kDouble), p.select(1, o.queryRows[r]), 1e-5, 1e-6))
            << "row " << o.queryRows[r];
}

TEST_P(SpanAttentionCpuTest, ZoomedMapRegionGivesExactTokenCells) {
    const Case c = GetParam();
    if (c.T < 8) GTEST_SKIP() << "region needs a few tokens";
    at::manual_seed(static_cast<uint64_t>(std::random_device{}()));
    const int64_t H = 2, T = c.T;
    auto q = at::randn({1, H, T, c.D}), k = at::randn({1, H, T, c.D}), v = at::randn({1, H, T, c.D});
    const double scale = 1.0 / std::sqrt(static_cast<double>(c.D));
    AttentionStatsOptions o;
    o.poolSize = 1024;  // more bins than region tokens: one cell per (query, key)
    o.mapQ0 = T / 4;
    o.mapQ1 = T / 2 + 3;
    o.mapK0 = T / 8;
    o.mapK1 = T / 2;
    o.blockElements = c.blockElements;
    auto st = std::get<2>(span_attention_stats_cpu(q, k, v, c.mask, scale, o));
    auto p = naiveProbabilities(q, k, c.mask, scale);
    auto want = p.slice(1, o.mapQ0, o.mapQ1).slice(2, o.mapK0, o.mapK1);
    ASSERT_EQ(st.pooled.sizes(), want.sizes());
    EXPECT_TRUE(at::allclose(st.pooled.to(at::kDouble), want, 1e-4, 1e-6));
}

INSTANTIATE_TEST_SUITE_P(
    RaggedLengths, SpanAttentionCpuTest,
    ::testing::Values(Case{1, 8, {MaskKind::Full, 0, false}, 1 << 20}, Case{37, 16, {MaskKind::Full, 0, false}, 64},
                      Case{130, 32, {MaskKind::Full, 0, false}, 500}, Case{61, 8, {MaskKind::Window, 1, false}, 64},
                      Case{97, 16, {MaskKind::Window, 9, false}, 100}, Case{129, 64, {MaskKind::Window, 64, false}, 1 << 20},
                      Case{83, 8, {MaskKind::Block, 10, false}, 64}, Case{100, 16, {MaskKind::Block, 16, true}, 300},
                      Case{45, 8, {MaskKind::Block, 64, true}, 64}),
    [](const auto& info) { return caseName(info.param); });

TEST(SpanAttentionCpu, DistanceBinsAreLog2Ranges) {
    EXPECT_EQ(distanceBin(0), 0);
    EXPECT_EQ(distanceBin(1), 1);
    EXPECT_EQ(distanceBin(2), 2);
    EXPECT_EQ(distanceBin(3), 2);
    EXPECT_EQ(distanceBin(4), 3);
    EXPECT_EQ(distanceBin(7), 3);
    EXPECT_EQ(distanceBin(1024), 11);
    EXPECT_EQ(distanceBin((1 << 22) - 1), 22);
}

TEST(SpanAttentionCpu, LongDocument32kFullLayerRunsInBoundedMemory) {
    // 32k tokens, one head: the naive (T, T) fp32 matrix alone would be 4 GiB; the blocked path
    // holds at most blockElements scores at a time.
    const int64_t T = 32768, D = 16;
    at::manual_seed(7);
    auto q = at::randn({1, 1, T, D}), k = at::randn({1, 1, T, D}), v = at::randn({1, 1, T, D});
    AttentionStatsOptions o;
    o.beyondSpan = 512;
    o.poolSize = 64;
    o.queryRows = {T - 1};
    auto [out, lse, st] = span_attention_stats_cpu(q, k, v, {MaskKind::Full, 0, false}, 0.25, o);
    EXPECT_NEAR(st.binMass.sum().item<double>(), static_cast<double>(T), 1e-3 * T);
    // The last row, recomputed directly, matches.
    auto s = at::matmul(q[0][0][T - 1].to(at::kDouble), k[0][0].to(at::kDouble).t()) * 0.25;
    auto row = at::softmax(s, 0);
    EXPECT_TRUE(at::allclose(st.rows[0][0].to(at::kDouble), row, 1e-4, 1e-7));
    EXPECT_TRUE(at::isfinite(out).all().item<bool>());
}

// The backward reference against autograd through the textbook masked softmax (fp64), on fresh
// random inputs with ragged lengths and every mask kind.
TEST(SpanAttentionCpu, BackwardMatchesAutogradOfTheTextbookAttention) {
    std::mt19937 seeds(std::random_device{}());
    const SpanMask masks[] = {{MaskKind::Full, 0, false}, {MaskKind::Window, 16, false}, {MaskKind::Window, 1, false},
                              {MaskKind::Block, 32, false}, {MaskKind::Block, 24, true}};
    for (const SpanMask& mask : masks)
        for (int64_t T : {1, 17, 100, 257}) {
            const uint64_t seed = seeds();
            auto gen = at::detail::createCPUGenerator(seed);
            const int64_t B = 2, H = 3, D = 16;
            auto q = at::randn({B, H, T, D}, gen, at::kFloat), k = at::randn({B, H, T, D}, gen, at::kFloat);
            auto v = at::randn({B, H, T, D}, gen, at::kFloat), g = at::randn({B, H, T, D}, gen, at::kFloat);
            const double scale = 1.0 / std::sqrt(static_cast<double>(D));
            auto [out, lse] = span_attention_cpu(q, k, v, mask, scale);
            auto [dq, dk, dv] = span_attention_backward_cpu(q, k, v, out, lse, g, mask, scale);

            auto qd = q.to(at::kDouble).requires_grad_(true), kd = k.to(at::kDouble).requires_grad_(true);
            auto vd = v.to(at::kDouble).requires_grad_(true);
            auto allowed = test::denseMask(mask, T);
            auto s = (at::matmul(qd, kd.transpose(-1, -2)) * scale).masked_fill(allowed.logical_not(), -INFINITY);
            (at::matmul(at::softmax(s, -1), vd) * g.to(at::kDouble)).sum().backward();
            const std::string where = "mask kind " + std::to_string(static_cast<int>(mask.kind)) + " span " +
                                      std::to_string(mask.span) + " T " + std::to_string(T) + " seed " + std::to_string(seed);
            for (auto [ours, ref, name] : {std::tuple{dq, qd.grad(), "dq"}, std::tuple{dk, kd.grad(), "dk"},
                                           std::tuple{dv, vd.grad(), "dv"}}) {
                const double err = (ours.to(at::kDouble) - ref).abs().max().item<double>();
                const double mag = ref.abs().max().item<double>();
                EXPECT_LT(err, 1e-4 * std::max(1.0, mag)) << name << " " << where;
            }
        }
}
