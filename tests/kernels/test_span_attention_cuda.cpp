// The CUDA span attention forward against the CPU reference (fp32 arithmetic on the same rounded
// inputs): the kernel's max error must be at most 2x the error PyTorch's own attention (SDPA with
// the same boolean mask, same low precision) makes against that reference, plus a small floor.
// Outputs are poisoned with NaN before each run, so any unwritten element fails. Fresh random
// inputs per run; ragged lengths. Skipped where no GPU is present (run by scripts/gpu_check.sh).
#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include <cmath>
#include <random>
#include <sstream>
#include <string>

#include "kernels/attention_cpu.h"
#include "kernels/ops.h"
#include "tests/kernels/attention_test_util.h"

using namespace spanscope;

namespace {

using FwdCase = test::AttentionCase;
using test::caseName;

SpanMask window(int64_t w) { return {MaskKind::Window, w, false}; }
SpanMask block(int64_t b, bool prev) { return {MaskKind::Block, b, prev}; }

std::vector<FwdCase> fwdCases() {
    std::vector<FwdCase> cases;
    const std::vector<SpanMask> masks = {SpanMask{}, window(1), window(37), window(513), block(64, false),
                                         block(100, true), block(128, true)};
    for (const auto& m : masks)
        for (int64_t T : {1, 17, 100, 1000})
            for (int64_t D : {64, 128}) cases.push_back({2, 3, T, D, at::kBFloat16, m});
    for (const auto& m : masks)
        for (int64_t D : {64, 128}) cases.push_back({1, 4, 777, D, at::kHalf, m});
    for (const auto& m : {SpanMask{}, window(513), block(100, true)})
        for (int64_t D : {64, 128})
            for (auto dt : {at::kBFloat16, at::kHalf}) cases.push_back({1, 2, 4099, D, dt, m});
    return cases;
}

using test::denseMask;
using test::maxAbs;

class SpanAttentionCudaTest : public ::testing::TestWithParam<FwdCase> {};

}  // namespace

TEST_P(SpanAttentionCudaTest, MatchesCpuReferenceWithin2xPyTorchError) {
    if (!at::hasCUDA()) GTEST_SKIP() << "no CUDA GPU";
    const FwdCase c = GetParam();
    at::manual_seed(static_cast<uint64_t>(std::random_device{}()));
    auto dev = at::TensorOptions().device(at::kCUDA).dtype(c.dtype);
    auto q = at::randn({c.B, c.H, c.T, c.D}, dev), k = at::randn({c.B, c.H, c.T, c.D}, dev),
         v = at::randn({c.B, c.H, c.T, c.D}, dev);
    const double scale = 1.0 / std::sqrt(static_cast<double>(c.D));

    // fp32 reference on the CPU from the same (rounded) inputs.
    auto [refOut, refLse] = span_attention_cpu(q.cpu().to(at::kFloat), k.cpu().to(at::kFloat), v.cpu().to(at::kFloat),
                                               c.mask, scale);
    // PyTorch's own attention at the same precision, same mask.
    auto allowed = denseMask(c.mask, c.T).to(at::kCUDA);
    auto torchOut = at::scaled_dot_product_attention(q, k, v, allowed, 0.0, false, scale);
    const double torchErr = maxAbs(torchOut, refOut);

    auto out = at::full({c.B, c.H, c.T, c.D}, NAN, dev);
    auto lse = at::full({c.B, c.H, c.T}, NAN, dev.dtype(at::kFloat));
    const double floor = 1e-3;
    const double lseScale = refLse.abs().max().item<double>();
    // One kernel's run into the NaN-poisoned out / lse, checked against the reference.
    auto runAndCheck = [&](const std::string& kernel) {
        out.fill_(NAN);
        lse.fill_(NAN);
        span_attention_cuda_out(q, k, v, c.mask, scale, out, lse);
        ASSERT_FALSE(out.isnan().any().item<bool>()) << caseName(c) << " " << kernel << ": unwritten or NaN output elements";
        ASSERT_FALSE(lse.isnan().any().item<bool>()) << caseName(c) << " " << kernel << ": unwritten or NaN lse elements";
        const double err = maxAbs(out, refOut);
        EXPECT_LE(err, 2 * torchErr + floor) << caseName(c) << " " << kernel << ": max error " << err << ", PyTorch " << torchErr;
        const double lseErr = maxAbs(lse, refLse);
        EXPECT_LE(lseErr, 1e-3 + 1e-4 * lseScale) << caseName(c) << " " << kernel << ": lse max error " << lseErr;
    };
    runAndCheck("default kernel");
    if (HasFatalFailure()) return;

    // The allocating entry point and the torch operator compute the same thing.
    auto [out2, lse2] = span_attention_cuda(q, k, v, c.mask, scale);
    EXPECT_TRUE(at::equal(out, out2)) << caseName(c);
    EXPECT_TRUE(at::equal(lse, lse2)) << caseName(c);

    // Every kernel behind the entry point meets the same bound: the mma.sync kernel (the only one
    // on GPUs other than compute capability 9.0) and the wgmma variants kept for tuning.
    for (const char* kernel : {"mma", "sm90:1", "sm90:2", "sm90:3", "sm90:4", "sm90:5", "sm90:6"}) {
        test::ScopedEnv env("SPANSCOPE_FWD_KERNEL", kernel);
        runAndCheck(kernel);
        if (HasFatalFailure()) return;
    }
}

TEST(SpanAttentionCuda, KernelOverrideRejectsUnknownNames) {
    if (!at::hasCUDA()) GTEST_SKIP() << "no CUDA GPU";
    auto q = at::randn({1, 1, 16, 64}, at::TensorOptions().device(at::kCUDA).dtype(at::kBFloat16));
    test::expectEnvValuesRejected("SPANSCOPE_FWD_KERNEL", {"fastest", "sm90:", "sm90:x"},
                                  [&] { span_attention_cuda(q, q, q, SpanMask{}, 1.0); });
}

INSTANTIATE_TEST_SUITE_P(Shapes, SpanAttentionCudaTest, ::testing::ValuesIn(fwdCases()),
                         [](const ::testing::TestParamInfo<FwdCase>& i) { return caseName(i.param); });

TEST(SpanAttentionCuda, NonContiguousHeadsViewIsAccepted) {
    if (!at::hasCUDA()) GTEST_SKIP() << "no CUDA GPU";
    at::manual_seed(static_cast<uint64_t>(std::random_device{}()));
    // (B, T, H, D) storage viewed as (B, H, T, D): what the engine's projections produce.
    auto x = at::randn({1, 300, 3, 64}, at::TensorOptions().device(at::kCUDA).dtype(at::kBFloat16));
    auto q = x.transpose(1, 2), k = (x * 0.5).transpose(1, 2), v = (x * 2).transpose(1, 2);
    auto [out, lse] = span_attention_cuda(q, k, v, window(50), 0.125);
    auto [refOut, refLse] = span_attention_cuda(q.contiguous(), k.contiguous(), v.contiguous(), window(50), 0.125);
    EXPECT_TRUE(at::equal(out, refOut));
    EXPECT_TRUE(at::equal(lse, refLse));
}

TEST(SpanAttentionCuda, RejectsBadInputsWithClearMessages) {
    if (!at::hasCUDA()) GTEST_SKIP() << "no CUDA GPU";
    auto o = at::TensorOptions().device(at::kCUDA).dtype(at::kBFloat16);
    auto q = at::randn({1, 2, 16, 64}, o);
    test::expectTorchError([&] { span_attention_cuda(q, q, q.to(at::kHalf), SpanMask{}, 1.0); }, "one dtype");
    test::expectTorchError([&] { span_attention_cuda(q.to(at::kFloat), q.to(at::kFloat), q.to(at::kFloat), SpanMask{}, 1.0); },
                "bfloat16 or float16");
    test::expectTorchError([&] { span_attention_cuda(q.cpu(), q.cpu(), q.cpu(), SpanMask{}, 1.0); }, "CUDA tensor");
    test::expectTorchError([&] { span_attention_cuda(q, q.narrow(2, 0, 8), q, SpanMask{}, 1.0); }, "shape");
    auto q96 = at::randn({1, 2, 16, 96}, o);
    test::expectTorchError([&] { span_attention_cuda(q96, q96, q96, SpanMask{}, 1.0); }, "64 or 128");
    auto odd = at::randn({1, 2, 16, 65}, o).narrow(3, 0, 64);
    test::expectTorchError([&] { span_attention_cuda(odd, odd, odd, SpanMask{}, 1.0); }, "contiguous last dimension");
    test::expectTorchError([&] { span_attention_cuda(q, q, q, window(0), 1.0); }, "span must be positive");
}
