// The CUDA span attention backward against the CPU reference backward (fp32 on the same rounded
// inputs): for dq, dk and dv the kernel's max error must be at most 2x the error PyTorch's own
// attention backward (SDPA with the same boolean mask, same low precision, through autograd) makes
// against that reference, plus a small floor. The caching allocator is filled with NaN before each
// run, so unwritten output elements fail. Fresh random inputs per run; ragged lengths. Skipped where
// no GPU is present (run by scripts/gpu_check.sh).
#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include <cmath>
#include <random>

#include "kernels/attention_cpu.h"
#include "kernels/ops.h"
#include "tests/kernels/attention_test_util.h"

using namespace spanscope;

namespace {

using BwdCase = test::AttentionCase;
using test::caseName;

std::vector<BwdCase> bwdCases() {
    const std::vector<SpanMask> masks = {SpanMask{}, {MaskKind::Window, 1, false}, {MaskKind::Window, 37, false},
                                         {MaskKind::Window, 513, false}, {MaskKind::Block, 64, false},
                                         {MaskKind::Block, 100, true}};
    std::vector<BwdCase> cases;
    for (const auto& m : masks)
        for (int64_t T : {1, 17, 100, 1000})
            for (int64_t D : {64, 128}) cases.push_back({2, 3, T, D, at::kBFloat16, m});
    for (const auto& m : masks) cases.push_back({1, 2, 777, 64, at::kHalf, m});
    for (const auto& m : {SpanMask{}, SpanMask{MaskKind::Window, 513, false}}) cases.push_back({1, 2, 4099, 128, at::kBFloat16, m});
    return cases;
}

using test::denseMask;
using test::maxAbs;

class SpanAttentionBwdCudaTest : public ::testing::TestWithParam<BwdCase> {};

}  // namespace

TEST_P(SpanAttentionBwdCudaTest, MatchesCpuReferenceWithin2xPyTorchError) {
    if (!at::hasCUDA()) GTEST_SKIP() << "no CUDA GPU";
    const BwdCase c = GetParam();
    at::manual_seed(static_cast<uint64_t>(std::random_device{}()));
    auto dev = at::TensorOptions().device(at::kCUDA).dtype(c.dtype);
    auto q = at::randn({c.B, c.H, c.T, c.D}, dev), k = at::randn({c.B, c.H, c.T, c.D}, dev);
    auto v = at::randn({c.B, c.H, c.T, c.D}, dev), dout = at::randn({c.B, c.H, c.T, c.D}, dev);
    const double scale = 1.0 / std::sqrt(static_cast<double>(c.D));

    // fp32 reference on the CPU from the same rounded inputs.
    auto qf = q.cpu().to(at::kFloat), kf = k.cpu().to(at::kFloat), vf = v.cpu().to(at::kFloat);
    auto [refOut, refLse] = span_attention_cpu(qf, kf, vf, c.mask, scale);
    auto [rdq, rdk, rdv] = span_attention_backward_cpu(qf, kf, vf, refOut, refLse, dout.cpu().to(at::kFloat), c.mask, scale);

    // PyTorch's own attention backward at the same precision.
    auto qt = q.detach().clone().requires_grad_(true), kt = k.detach().clone().requires_grad_(true);
    auto vt = v.detach().clone().requires_grad_(true);
    auto allowed = denseMask(c.mask, c.T).to(at::kCUDA);
    (at::scaled_dot_product_attention(qt, kt, vt, allowed, 0.0, false, scale).to(at::kFloat) * dout.to(at::kFloat))
        .sum()
        .backward();

    auto [out, lse] = span_attention_cuda(q, k, v, c.mask, scale);
    {
        auto poison = at::full({4 * c.B * c.H * c.T * c.D + 4096}, NAN, dev.dtype(at::kFloat));
    }  // freed into the caching allocator: the outputs below reuse NaN-filled memory
    auto [dq, dk, dv] = span_attention_backward_cuda(q, k, v, out, lse, dout, c.mask, scale);
    for (auto [ours, torchGrad, ref, name] : {std::tuple{dq, qt.grad(), rdq, "dq"}, std::tuple{dk, kt.grad(), rdk, "dk"},
                                              std::tuple{dv, vt.grad(), rdv, "dv"}}) {
        ASSERT_FALSE(ours.isnan().any().item<bool>()) << caseName(c) << ": " << name << " has unwritten or NaN elements";
        const double err = maxAbs(ours, ref), torchErr = maxAbs(torchGrad, ref);
        const double floor = 2e-3 * std::max(1.0, ref.abs().max().item<double>());
        EXPECT_LE(err, 2 * torchErr + floor) << caseName(c) << " " << name << ": kernel max error " << err << ", PyTorch "
                                             << torchErr;
    }
}

INSTANTIATE_TEST_SUITE_P(Shapes, SpanAttentionBwdCudaTest, ::testing::ValuesIn(bwdCases()),
                         [](const ::testing::TestParamInfo<BwdCase>& i) { return caseName(i.param); });

TEST(SpanAttentionBwdCuda, RejectsBadInputsWithClearMessages) {
    if (!at::hasCUDA()) GTEST_SKIP() << "no CUDA GPU";
    auto o = at::TensorOptions().device(at::kCUDA).dtype(at::kBFloat16);
    auto q = at::randn({1, 2, 16, 64}, o);
    auto [out, lse] = span_attention_cuda(q, q, q, SpanMask{}, 0.125);
    test::expectTorchError([&] { span_attention_backward_cuda(q, q, q, out, lse, q.to(at::kHalf), SpanMask{}, 0.125); }, "dout must be");
    test::expectTorchError([&] { span_attention_backward_cuda(q, q, q, out, lse.narrow(2, 0, 8), q, SpanMask{}, 0.125); }, "lse");
    test::expectTorchError([&] { span_attention_backward_cuda(q, q, q, out, lse.to(at::kHalf), q, SpanMask{}, 0.125); }, "float32");
}
