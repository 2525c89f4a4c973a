// Training's differentiable span attention (engine/span_autograd.h) against autograd through
// PyTorch's SDPA with the same boolean mask: outputs and the gradients of q, k and v agree.
#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include <cmath>
#include <random>

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
