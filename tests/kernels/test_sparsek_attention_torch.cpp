// The differentiable SparseK attention (ATen) against the plain C++ reference, and its gradients
// against central finite differences — fresh random inputs, ragged lengths.
#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include <cmath>
#include <random>
#include <vector>

#include "kernels/sparsek_attention_cpu.h"
#include "kernels/sparsek_attention_torch.h"

using namespace spanscope;

namespace {

std::vector<float> toVector(const at::Tensor& t) {
    auto c = t.to(at::kFloat).contiguous();
    return std::vector<float>(c.data_ptr<float>(), c.data_ptr<float>() + c.numel());
}

}  // namespace

TEST(SparseKAttentionTorch, MatchesTheCpuReference) {
    std::mt19937 seeds(std::random_device{}());
    for (int64_t T : {1, 5, 37, 100})
        for (int64_t w : {1, 4, 16})
            for (double topK : {0.0, 1.0, 3.5, 8.0, 1e9}) {
                const uint64_t seed = seeds();
                auto gen = at::detail::createCPUGenerator(seed);
                const int64_t B = 1, H = 2, D = 8;
                auto q = at::randn({B, H, T, D}, gen), k = at::randn({B, H, T, D}, gen), v = at::randn({B, H, T, D}, gen);
                auto u = at::randn({B, H, T}, gen) * 2.0;
                const double scale = 1.0 / std::sqrt(static_cast<double>(D));
                at::Tensor lse, mask;
                auto out = sparsek_attention_torch(q, k, v, u, topK, w, scale, &lse, &mask);
                for (int64_t h = 0; h < H; ++h) {
                    SparseKAttentionParams params;
                    params.topK = topK;
                    params.window = w;
                    params.scale = scale;
                    auto ref = sparsek_attention_cpu(toVector(q[0][h]), toVector(k[0][h]), toVector(v[0][h]),
                                                     toVector(u[0][h]), T, D, params);
                    const std::string where = "T " + std::to_string(T) + " w " + std::to_string(w) + " k " +
                                              std::to_string(topK) + " head " + std::to_string(h) + " seed " + std::to_string(seed);
                    auto refOut = at::from_blob(ref.out.data(), {T, D}, at::kFloat);
                    auto refLse = at::from_blob(ref.lse.data(), {T}, at::kFloat);
                    EXPECT_LT((out[0][h] - refOut).abs().max().item<double>(), 1e-4) << where;
                    EXPECT_LT((lse[0][h] - refLse).abs().max().item<double>(), 1e-4) << where;
                    // The selected keys and their mask values, query by query.
                    auto m = mask[0][h];
                    for (int64_t i = 0; i < T; ++i)
                        for (int64_t e = ref.selectedOffsets[static_cast<size_t>(i)]; e < ref.selectedOffsets[static_cast<size_t>(i) + 1]; ++e) {
                            const int64_t j = ref.selectedKeys[static_cast<size_t>(e)];
                            EXPECT_NEAR(m[i][j].item<double>(), ref.selectedMask[static_cast<size_t>(e)], 1e-5) << where;
                        }
                    // Keys before the window carry exactly min(k, |C_i|) mask in total.
                    for (int64_t i = 0; i < T; ++i) {
                        const int64_t candidates = std::max<int64_t>(0, i - w + 1);
                        const double total = candidates ? m[i].slice(0, 0, candidates).sum().item<double>() : 0.0;
                        EXPECT_NEAR(total, std::min<double>(topK, static_cast<double>(candidates)), 1e-4) << where << " row " << i;
                    }
                }
            }
}

TEST(SparseKAttentionTorch, GradientsMatchFiniteDifferences) {
    std::mt19937 seeds(std::random_device{}());
    for (double topK : {1.0, 2.5, 4.0}) {
        const uint64_t seed = seeds();
        auto gen = at::detail::createCPUGenerator(seed);
        const int64_t T = 13, D = 4, w = 3;
        auto o = at::TensorOptions().dtype(at::kDouble);
        auto q = at::randn({1, 1, T, D}, gen, o), k = at::randn({1, 1, T, D}, gen, o), v = at::randn({1, 1, T, D}, gen, o);
        // Scores spread over a few units: the SPARSEK masks have free (fractional) entries.
        auto u = at::randn({1, 1, T}, gen, o) * 0.7;
        auto g = at::randn({1, 1, T, D}, gen, o);
        auto loss = [&](const at::Tensor& qq, const at::Tensor& uu) {
            return (sparsek_attention_torch(qq, k, v, uu, topK, w, 0.5) * g).sum();
        };
        auto qg = q.clone().requires_grad_(true), ug = u.clone().requires_grad_(true);
        loss(qg, ug).backward();
        const double h = 1e-6;
        const std::string where = "k " + std::to_string(topK) + " seed " + std::to_string(seed);
        for (int64_t j = 0; j < T; ++j) {
            auto up = u.clone(), um = u.clone();
            up[0][0][j] += h;
            um[0][0][j] -= h;
            const double fd = (loss(q, up).item<double>() - loss(q, um).item<double>()) / (2 * h);
            EXPECT_NEAR(ug.grad()[0][0][j].item<double>(), fd, 1e-5 * std::max(1.0, std::abs(fd))) << where << " du_" << j;
        }
        for (int64_t i : {0, 5, 12}) {
            auto qp = q.clone(), qm = q.clone();
            qp[0][0][i][1] += h;
            qm[0][0][i][1] -= h;
            const double fd = (loss(qp, u).item<double>() - loss(qm, u).item<double>()) / (2 * h);
            EXPECT_NEAR(qg.grad()[0][0][i][1].item<double>(), fd, 1e-5 * std::max(1.0, std::abs(fd))) << where << " dq_" << i;
        }
        EXPECT_GT(ug.grad().abs().sum().item<double>(), 0.0) << where << ": the scores must receive a gradient";
    }
}
