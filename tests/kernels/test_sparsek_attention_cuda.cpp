// The fused SparseK attention kernel against the CPU reference (sparsek_attention_aten in fp32 on
// the same rounded inputs): the kernel's max error must be at most 2x the error PyTorch's own
// attention makes at the same precision (SDPA with the dense additive mask log m, -inf where not
// attended, built from the exact selection), plus a small floor. Outputs poisoned with NaN before
// each run; fresh random inputs and scores (spread or nearly equal: fractional tails; some -inf);
// ragged lengths; fractional, zero and everything-budgets. Skipped without a GPU.
#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include <cmath>
#include <limits>
#include <random>
#include <sstream>

#include "kernels/attention_cpu.h"
#include "kernels/ops.h"
#include "kernels/sparsek_attention_cpu.h"
#include "kernels/sparsek_attention_torch.h"
#include "tests/kernels/attention_test_util.h"

using namespace spanscope;

namespace {

struct SparseKCase {
    int64_t B, H, T, D;
    at::ScalarType dtype;
    double topK;
    int64_t window;
    double spread;  // key scores u ~ N(0, spread²); small spread: long fractional tails
};

std::string caseName(const SparseKCase& c) {
    std::ostringstream s;
    s << "k" << (std::isinf(c.topK) ? std::string("inf") : std::to_string(static_cast<int>(c.topK * 10))) << "_w"
      << c.window << "_spread" << static_cast<int>(c.spread * 100) << "_B" << c.B << "_H" << c.H << "_T" << c.T << "_D"
      << c.D << (c.dtype == at::kBFloat16 ? "_bf16" : "_fp16");
    return s.str();
}
void PrintTo(const SparseKCase& c, std::ostream* os) { *os << caseName(c); }

std::vector<SparseKCase> cases() {
    std::vector<SparseKCase> v;
    for (int64_t T : {1, 100, 129, 1000})
        for (int64_t D : {64, 128}) {
            v.push_back({2, 3, T, D, at::kBFloat16, 16, 37, 4.0});
            v.push_back({1, 2, T, D, at::kHalf, 7.5, 1, 0.05});
        }
    for (int64_t D : {64, 128}) {
        v.push_back({1, 2, 777, D, at::kBFloat16, 0, 64, 4.0});                                     // nothing selected
        v.push_back({1, 2, 777, D, at::kBFloat16, std::numeric_limits<double>::infinity(), 100, 1});  // everything
        v.push_back({1, 3, 2500, D, at::kBFloat16, 64, 256, 3.0});
        v.push_back({2, 2, 3001, D, at::kHalf, 128.5, 384, 0.3});
    }
    return v;
}

// Key scores of a case, float32 with options o: N(0, spread²), about 2 % −inf (never selected).
at::Tensor randomScores(const SparseKCase& c, const at::TensorOptions& o) {
    auto u = at::randn({c.B, c.H, c.T}, o.dtype(at::kFloat)) * c.spread;
    return u.masked_fill_(at::rand({c.B, c.H, c.T}, u.options()) < 0.02, -std::numeric_limits<float>::infinity());
}

// The dense (T, T) additive mask of one (b, h): 0 on the window, log m on selected keys, -inf elsewhere.
at::Tensor denseBias(const float* u, int64_t T, double topK, int64_t window) {
    const SparseKSelection sel = sparsek_select_cpu(u, T, topK, window);
    auto bias = at::full({T, T}, -std::numeric_limits<float>::infinity(), at::kFloat);
    auto a = bias.accessor<float, 2>();
    for (int64_t i = 0; i < T; ++i) {
        for (int64_t j = std::max<int64_t>(0, i - window + 1); j <= i; ++j) a[i][j] = 0;
        for (int64_t n = sel.offsets[static_cast<size_t>(i)]; n < sel.offsets[static_cast<size_t>(i) + 1]; ++n)
            a[i][sel.keys[static_cast<size_t>(n)]] = std::log(sel.mask[static_cast<size_t>(n)]);
    }
    return bias;
}

class SparseKAttentionCudaTest : public ::testing::TestWithParam<SparseKCase> {};

}  // namespace

TEST_P(SparseKAttentionCudaTest, MatchesCpuReferenceWithin2xPyTorchError) {
    if (!at::hasCUDA()) GTEST_SKIP() << "no CUDA GPU";
    const SparseKCase c = GetParam();
    at::manual_seed(static_cast<uint64_t>(std::random_device{}()));
    auto dev = at::TensorOptions().device(at::kCUDA).dtype(c.dtype);
    auto q = at::randn({c.B, c.H, c.T, c.D}, dev), k = at::randn({c.B, c.H, c.T, c.D}, dev),
         v = at::randn({c.B, c.H, c.T, c.D}, dev);
    auto u = randomScores(c, at::TensorOptions());
    const double scale = 1.0 / std::sqrt(static_cast<double>(c.D));

    std::vector<at::Tensor> refOuts, refLses, torchOuts;
    for (int64_t b = 0; b < c.B; ++b) {
        auto [o, l] = sparsek_attention_aten(q[b].unsqueeze(0).cpu().to(at::kFloat), k[b].unsqueeze(0).cpu().to(at::kFloat),
                                             v[b].unsqueeze(0).cpu().to(at::kFloat), u[b].unsqueeze(0), c.topK, c.window,
                                             scale);
        refOuts.push_back(o);
        refLses.push_back(l);
        std::vector<at::Tensor> biases;
        for (int64_t h = 0; h < c.H; ++h) biases.push_back(denseBias(u[b][h].contiguous().data_ptr<float>(), c.T, c.topK, c.window));
        auto bias = at::stack(biases).unsqueeze(0).to(dev);
        torchOuts.push_back(at::scaled_dot_product_attention(q[b].unsqueeze(0), k[b].unsqueeze(0), v[b].unsqueeze(0), bias, 0.0,
                                                             false, scale));
    }
    auto refOut = at::cat(refOuts), refLse = at::cat(refLses);
    const double torchErr = test::maxAbs(at::cat(torchOuts), refOut);

    const SparseKPlan plan = sparsek_plan(u, c.topK, c.window, kSparseKPlanBlockRows, q.device());
    auto out = at::full({c.B, c.H, c.T, c.D}, NAN, dev);
    auto lse = at::full({c.B, c.H, c.T}, NAN, dev.dtype(at::kFloat));
    sparsek_attention_planned_cuda_out(q, k, v, u.to(at::kCUDA), plan, c.window, scale, out, lse);
    ASSERT_FALSE(out.isnan().any().item<bool>()) << caseName(c) << ": unwritten or NaN output elements";
    ASSERT_FALSE(lse.isnan().any().item<bool>()) << caseName(c) << ": unwritten or NaN lse elements";
    const double err = test::maxAbs(out, refOut);
    EXPECT_LE(err, 2 * torchErr + 1e-3) << caseName(c) << ": kernel max error " << err << ", PyTorch " << torchErr;
    const double lseErr = test::maxAbs(lse, refLse);
    EXPECT_LE(lseErr, 1e-3 + 1e-4 * refLse.abs().max().item<double>()) << caseName(c) << ": lse max error " << lseErr;

    // The planning entry point computes the same thing.
    auto [out2, lse2] = sparsek_attention_cuda(q, k, v, u.to(at::kCUDA), c.topK, c.window, scale);
    EXPECT_TRUE(at::equal(out, out2)) << caseName(c);
    EXPECT_TRUE(at::equal(lse, lse2)) << caseName(c);
}

INSTANTIATE_TEST_SUITE_P(Shapes, SparseKAttentionCudaTest, ::testing::ValuesIn(cases()),
                         [](const ::testing::TestParamInfo<SparseKCase>& i) { return caseName(i.param); });

TEST(SparseKAttentionCuda, RejectsBadInputsWithClearMessages) {
    if (!at::hasCUDA()) GTEST_SKIP() << "no CUDA GPU";
    auto o = at::TensorOptions().device(at::kCUDA).dtype(at::kBFloat16);
    auto q = at::randn({1, 2, 16, 64}, o);
    auto u = at::randn({1, 2, 16}, o.dtype(at::kFloat));
    test::expectTorchError([&] { sparsek_attention_cuda(q, q, q, u.narrow(2, 0, 8), 4, 4, 1.0); }, "shape");
    test::expectTorchError([&] { sparsek_attention_cuda(q, q, q, u.cpu(), 4, 4, 1.0); }, "u must be on");
    test::expectTorchError([&] { sparsek_attention_cuda(q, q, q, u, -1, 4, 1.0); }, "k >= 0");
    test::expectTorchError([&] { sparsek_attention_cuda(q, q, q, u, 4, 0, 1.0); }, "span must be positive");
    auto bad = u.clone();
    bad[0][1][3] = NAN;
    test::expectTorchError([&] { sparsek_attention_cuda(q, q, q, bad, 4, 4, 1.0); }, "sparsek plan");
    SparseKPlan plan = sparsek_plan(u, 4, 4, kSparseKPlanBlockRows, q.device());
    auto out = at::empty_like(q);
    auto lse = at::empty({1, 2, 16}, u.options());
    auto [o2, l2] = sparsek_attention_cuda(q, q, q, u, 4, 4, 1.0);
    test::expectTorchError([&] { sparsek_attention_backward_cuda(q, q, q, u, plan, o2, l2, q.narrow(2, 0, 8), 4, 4, 1.0); }, "dout");
    test::expectTorchError([&] { sparsek_attention_backward_cuda(q, q, q, u, plan, o2, l2.to(at::kDouble), q, 4, 4, 1.0); },
                           "lse");
    test::expectTorchError([&] { sparsek_attention_backward_cuda(q, q, q, u, plan, o2, l2, q, -1, 4, 1.0); }, "k must be");
    plan.blockOffsets = plan.blockOffsets.narrow(0, 0, 1);
    test::expectTorchError([&] { sparsek_attention_planned_cuda_out(q, q, q, u, plan, 4, 1.0, out, lse); }, "block_offsets");
    test::expectTorchError([&] { sparsek_attention_backward_cuda(q, q, q, u, plan, o2, l2, q, 4, 4, 1.0); }, "block_offsets");
}

// The GPU plan (kernels/sparsek_plan.cu) against the host's: the same walk in IEEE double, so tau,
// the block lists and the pair count must be identical. Scores with and without ties, -inf scores,
// ragged lengths, fractional and large budgets, several segments (a segment's start rebuilt from its prefix, also
// where the budget binds only later); nearly equal scores overflow the GPU's active-set capacity
// and must fall back to the host plan.
TEST(SparseKPlanCuda, EqualsTheHostPlan) {
    if (!at::hasCUDA()) GTEST_SKIP() << "no CUDA GPU";
    at::manual_seed(static_cast<uint64_t>(std::random_device{}()));
    struct Case {
        int64_t B, H, T, w;
        double k, spread;
    };
    const double inf = std::numeric_limits<double>::infinity();
    const std::vector<Case> cases = {{2, 3, 1, 1, 3.5, 4},      {1, 2, 127, 1, 3.5, 4},    {1, 2, 128, 50, 16, 4},
                                     {2, 2, 129, 20, 16, 0.25}, {1, 3, 1000, 37, 7.5, 4},  {1, 2, 1000, 300, inf, 1},
                                     {1, 2, 5000, 64, 100, 2},  {2, 1, 4099, 384, 128, 4}, {1, 1, 3000, 10, 1, 0.01},
                                     {1, 2, 1500, 450, 100, 3}, {1, 1, 9000, 1, 300, 0.5}};
    for (const Case& c : cases) {
        std::ostringstream where;
        where << "B" << c.B << " H" << c.H << " T" << c.T << " w" << c.w << " k" << c.k << " spread" << c.spread;
        // Ties (multiples of 1/8) in every other head pair, plain random scores (rounding in the
        // walk's sums) in the rest.
        auto u = at::randn({c.B, c.H, c.T}) * c.spread;
        u.narrow(1, 0, (c.H + 1) / 2).copy_(at::round(u.narrow(1, 0, (c.H + 1) / 2) * 8) / 8);
        u.masked_fill_(at::rand({c.B, c.H, c.T}) < 0.03, -inf);
        const SparseKPlan host = sparsek_plan(u, c.k, c.w, kSparseKPlanBlockRows, at::kCPU);
        const SparseKPlan gpu = sparsek_plan_cuda(u.to(at::kCUDA), c.k, c.w);
        ASSERT_TRUE(gpu.tau.is_cuda() && gpu.blockKeys.is_cuda()) << where.str();
        EXPECT_TRUE(at::equal(gpu.tau.cpu(), host.tau)) << where.str() << ": tau differs, max "
                                                        << (gpu.tau.cpu() - host.tau).abs().nan_to_num(0).max().item<float>();
        EXPECT_TRUE(at::equal(gpu.blockOffsets.cpu(), host.blockOffsets)) << where.str();
        EXPECT_TRUE(at::equal(gpu.blockKeys.cpu(), host.blockKeys)) << where.str();
        EXPECT_EQ(gpu.selectedPairs, host.selectedPairs) << where.str();
        EXPECT_EQ(gpu.windowPairs, host.windowPairs) << where.str();
    }
    // Equal scores: the active set grows past the GPU's capacity; the host plan takes over.
    auto flat = at::zeros({1, 1, 6000});
    const SparseKPlan host = sparsek_plan(flat, 1500.5, 16, kSparseKPlanBlockRows, at::kCPU);
    const SparseKPlan gpu = sparsek_plan_cuda(flat.to(at::kCUDA), 1500.5, 16);  // k < capacity: the GPU tries
    EXPECT_TRUE(at::equal(gpu.blockKeys.cpu(), host.blockKeys));
    EXPECT_TRUE(at::equal(gpu.tau.cpu(), host.tau));
    auto bad = at::randn({1, 1, 50}, at::kCUDA);
    bad[0][0][7] = NAN;
    EXPECT_THROW(sparsek_plan_cuda(bad, 4, 4), c10::Error);
}

// The backward (kernels/sparsek_attention_bwd.cu for the selected keys, the span backward for the
// window) against the closed-form fp64 reference on the same rounded inputs: each of dq, dk, dv
// and du within 2x the error of PyTorch's own autograd through the dense SparseK attention at the
// same precision (sparsek_attention_torch on the GPU in bf16/fp16, scores in fp32), plus a floor of
// 1e-3 of the gradient's largest entry and the fp32 rounding of dP − Δ (see `cancel`). The same shapes, budgets and scores as the forward test; the
// memory the backward's fp32 dq buffer will reuse is filled with NaN first, so rows it failed to
// write show up.
class SparseKAttentionBwdCudaTest : public ::testing::TestWithParam<SparseKCase> {};

TEST_P(SparseKAttentionBwdCudaTest, MatchesTheClosedFormReferenceWithin2xPyTorchError) {
    if (!at::hasCUDA()) GTEST_SKIP() << "no CUDA GPU";
    const SparseKCase c = GetParam();
    at::manual_seed(static_cast<uint64_t>(std::random_device{}()));
    auto dev = at::TensorOptions().device(at::kCUDA).dtype(c.dtype);
    auto q = at::randn({c.B, c.H, c.T, c.D}, dev), k = at::randn({c.B, c.H, c.T, c.D}, dev),
         v = at::randn({c.B, c.H, c.T, c.D}, dev), dout = at::randn({c.B, c.H, c.T, c.D}, dev);
    auto u = randomScores(c, dev);
    const double scale = 1.0 / std::sqrt(static_cast<double>(c.D));

    auto [rdq, rdk, rdv, rdu] = sparsek_attention_backward_torch(q, k, v, u, dout, c.topK, c.window, scale);
    std::vector<at::Tensor> ref = {rdq, rdk, rdv, rdu};
    // PyTorch at the same precision: autograd through the dense differentiable attention.
    auto qg = q.clone().requires_grad_(true), kg = k.clone().requires_grad_(true), vg = v.clone().requires_grad_(true),
         ug = u.clone().requires_grad_(true);
    (sparsek_attention_torch(qg, kg, vg, ug, c.topK, c.window, scale).to(at::kFloat) * dout.to(at::kFloat)).sum().backward();
    std::vector<at::Tensor> torchGrads = {qg.grad(), kg.grad(), vg.grad(), ug.grad()};

    const SparseKPlan plan = sparsek_plan_cuda(u, c.topK, c.window);
    auto [out, lse] = sparsek_attention_cuda(q, k, v, u, c.topK, c.window, scale);
    { auto poison = at::full({c.B, c.H, c.T, c.D}, NAN, dev.dtype(at::kFloat)); }
    auto [dq, dk, dv, du] = sparsek_attention_backward_cuda(q, k, v, u, plan, out, lse, dout, c.topK, c.window, scale);
    std::vector<at::Tensor> got = {dq, dk, dv, du};
    const char* names[] = {"dq", "dk", "dv", "du"};
    // Where the exact gradient is 0 (a row whose only key is itself: P = 1, dP = Δ), dq, dk and du
    // keep the fp32 rounding of dP − Δ (a D-term dot product against Δ summed in another order):
    // about FLT_EPSILON·√D·|dO|·|v|, times scale·|q| or scale·|k| for dk and dq. Four times that is
    // the absolute floor (1e-6 before: an H100 run showed dk 1.25e-6 at T = 1, D = 128).
    const auto mx = [](const at::Tensor& t) { return t.abs().max().item<double>(); };
    const double cancel = 4.0 * 1.1920929e-7 * std::sqrt(static_cast<double>(c.D)) * mx(dout) * mx(v) *
                          std::max(1.0, scale * std::max(mx(q), mx(k)));
    ASSERT_EQ(dq.scalar_type(), c.dtype);
    ASSERT_EQ(du.scalar_type(), at::kFloat);
    for (int n = 0; n < 4; ++n) {
        ASSERT_FALSE(got[static_cast<size_t>(n)].isnan().any().item<bool>()) << caseName(c) << ": NaN or unwritten " << names[n];
        const double torchErr = test::maxAbs(torchGrads[static_cast<size_t>(n)], ref[static_cast<size_t>(n)]);
        const double err = test::maxAbs(got[static_cast<size_t>(n)], ref[static_cast<size_t>(n)]);
        const double floor = 1e-3 * ref[static_cast<size_t>(n)].abs().max().item<double>() + cancel;
        EXPECT_LE(err, 2 * torchErr + floor) << caseName(c) << ": " << names[n] << " max error " << err << ", PyTorch "
                                             << torchErr << ", largest entry "
                                             << ref[static_cast<size_t>(n)].abs().max().item<double>();
    }
}

INSTANTIATE_TEST_SUITE_P(Shapes, SparseKAttentionBwdCudaTest, ::testing::ValuesIn(cases()),
                         [](const ::testing::TestParamInfo<SparseKCase>& i) { return caseName(i.param); });
