// Training's differentiable span attention (engine/span_autograd.h) against autograd through
// PyTorch's SDPA with the same boolean mask: outputs and the gradients of q, k and v agree.
#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include <cmath>
#include <random>
#include <vector>

#include "engine/span_autograd.h"
#include "tests/kernels/attention_test_util.h"

using namespace spanscope;

TEST(SpanAutograd, GradientsMatchSdpaWithTheSameMask) {
    std::mt19937 seeds(std::random_device{}());
    for (const SpanMask& mask : {SpanMask{MaskKind::Window, 7, false}, SpanMask{MaskKind::Block, 16, false},
                                 SpanMask{MaskKind::Block, 10, true}, SpanMask{}}) {
        const uint64_t seed = seeds();
        auto gen = at::detail::createCPUGenerator(seed);
        const int64_t B = 2, H = 2, T = 45, D = 8;
        auto q0 = at::randn({B, H, T, D}, gen), k0 = at::randn({B, H, T, D}, gen), v0 = at::randn({B, H, T, D}, gen);
        auto g = at::randn({B, H, T, D}, gen);
        const double scale = 1.0 / std::sqrt(static_cast<double>(D));
        auto q1 = q0.clone().requires_grad_(true), k1 = k0.clone().requires_grad_(true), v1 = v0.clone().requires_grad_(true);
        auto out1 = spanAttentionAutograd(q1, k1, v1, mask, scale);
        (out1 * g).sum().backward();

        auto allowed = test::denseMask(mask, T);
        auto q2 = q0.clone().requires_grad_(true), k2 = k0.clone().requires_grad_(true), v2 = v0.clone().requires_grad_(true);
        auto out2 = at::scaled_dot_product_attention(q2, k2, v2, allowed, 0.0, false, scale);
        (out2 * g).sum().backward();

        const std::string where = "mask kind " + std::to_string(static_cast<int>(mask.kind)) + " seed " + std::to_string(seed);
        EXPECT_LT((out1 - out2).abs().max().item<double>(), 1e-5) << where;
        EXPECT_LT((q1.grad() - q2.grad()).abs().max().item<double>(), 1e-4) << where;
        EXPECT_LT((k1.grad() - k2.grad()).abs().max().item<double>(), 1e-4) << where;
        EXPECT_LT((v1.grad() - v2.grad()).abs().max().item<double>(), 1e-4) << where;
    }
}

// Training's differentiable SparseK attention on the GPU (fused forward, backward kernels) against
// autograd through the dense fp64 reference: gradients reach q, k, v and the key scores u — here u
// comes from v through a scorer (as in the model), so du must flow on into v and the scorer. Skipped
// without a GPU (on the CPU sparsekAttentionAutograd is the dense reference itself).
TEST(SparseKAutograd, KernelGradientsMatchTheDenseReferenceOnCuda) {
    if (!at::hasCUDA()) GTEST_SKIP() << "no CUDA GPU";
    at::manual_seed(static_cast<uint64_t>(std::random_device{}()));
    const int64_t B = 2, H = 2, T = 700, D = 64;
    const double topK = 20.5, scale = 1.0 / std::sqrt(static_cast<double>(D));
    const int64_t w = 48;
    auto f = at::TensorOptions().device(at::kCUDA).dtype(at::kDouble);
    auto q0 = at::randn({B, H, T, D}, f), k0 = at::randn({B, H, T, D}, f), v0 = at::randn({B, H, T, D}, f);
    auto w0 = at::randn({H, D}, f) * 0.5, g = at::randn({B, H, T, D}, f);
    // Inputs rounded to bf16 once, so both sides see the same values.
    q0 = q0.to(at::kBFloat16).to(at::kDouble);
    k0 = k0.to(at::kBFloat16).to(at::kDouble);
    v0 = v0.to(at::kBFloat16).to(at::kDouble);
    auto run = [&](bool kernel) {
        auto q = q0.clone().requires_grad_(true), k = k0.clone().requires_grad_(true), v = v0.clone().requires_grad_(true);
        auto sw = w0.clone().requires_grad_(true);
        auto pos = at::arange(T, f).view({1, 1, T}) * 0.05;
        at::Tensor out;
        if (kernel) {
            auto vb = v.to(at::kBFloat16);
            auto u = (vb.to(at::kFloat) * sw.to(at::kFloat).view({1, H, 1, D})).sum(-1) + pos.to(at::kFloat);
            out = sparsekAttentionAutograd(q.to(at::kBFloat16), k.to(at::kBFloat16), vb, u, topK, w, scale);
        } else {
            auto u = (v * sw.view({1, H, 1, D})).sum(-1) + pos;
            out = sparsekAttentionAutograd(q, k, v, u, topK, w, scale);  // fp64: the dense reference
        }
        (out.to(at::kDouble) * g).sum().backward();
        return std::vector<at::Tensor>{out.to(at::kDouble), q.grad(), k.grad(), v.grad(), sw.grad()};
    };
    auto got = run(true), ref = run(false);
    const char* names[] = {"out", "dq", "dk", "dv", "dscorer"};
    for (size_t n = 0; n < got.size(); ++n) {
        ASSERT_TRUE(got[n].defined()) << names[n] << " missing";
        const double scaleRef = ref[n].abs().max().item<double>();
        const double err = (got[n] - ref[n]).abs().max().item<double>();
        // bf16 operands: a few parts in a hundred of the largest entry at most.
        EXPECT_LT(err, 0.03 * scaleRef + 1e-4) << names[n] << ": max error " << err << ", largest " << scaleRef;
        EXPECT_GT(scaleRef, 0.0) << names[n] << " is all zero";
    }
}
