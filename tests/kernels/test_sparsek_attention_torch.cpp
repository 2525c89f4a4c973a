// The differentiable SparseK attention (ATen) against the plain C++ reference, and its gradients
// against central finite differences — fresh random inputs, ragged lengths.
#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "kernels/attention_cpu.h"
#include "kernels/sparsek_attention_cpu.h"
#include "kernels/sparsek_attention_torch.h"
#include "kernels/sparsek_plan.h"

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
        // A fractional k always leaves a free (fractional) mask entry once there are more candidates
        // than k, so the scores must get a gradient; an integer k may select every prefix's top keys
        // with masks exactly 0 or 1 (about 1 draw in 35 for k = 1), where the gradient is truly 0.
        if (topK != std::floor(topK)) {
            EXPECT_GT(ug.grad().abs().sum().item<double>(), 0.0) << where << ": the scores must receive a gradient";
        }
    }
}

// The closed-form backward (the CUDA kernel's reference) against autograd through the
// differentiable attention, fp64, fresh inputs: ragged lengths, windows, fractional, integer, zero
// and everything-budgets, two sequences and heads, some -inf scores (never selected).
TEST(SparseKAttentionTorch, ClosedFormBackwardMatchesAutograd) {
    std::mt19937 seeds(std::random_device{}());
    for (int64_t T : {1, 9, 40, 130})
        for (int64_t w : {1, 5})
            for (double topK : {0.0, 1.0, 3.5, 1e9}) {
                const uint64_t seed = seeds();
                auto gen = at::detail::createCPUGenerator(seed);
                const int64_t B = 2, H = 2, D = 8;
                auto o = at::TensorOptions().dtype(at::kDouble);
                auto q = at::randn({B, H, T, D}, gen, o), k = at::randn({B, H, T, D}, gen, o), v = at::randn({B, H, T, D}, gen, o);
                auto u = at::randn({B, H, T}, gen, o) * 1.5;
                u.masked_fill_(at::rand({B, H, T}, gen, o) < 0.05, -std::numeric_limits<double>::infinity());
                auto g = at::randn({B, H, T, D}, gen, o);
                const double scale = 0.4;
                auto qg = q.clone().requires_grad_(true), kg = k.clone().requires_grad_(true), vg = v.clone().requires_grad_(true),
                     ug = u.clone().requires_grad_(true);
                (sparsek_attention_torch(qg, kg, vg, ug, topK, w, scale) * g).sum().backward();
                auto [dq, dk, dv, du] = sparsek_attention_backward_torch(q, k, v, u, g, topK, w, scale);
                const std::string where = "T " + std::to_string(T) + " w " + std::to_string(w) + " k " + std::to_string(topK) +
                                          " seed " + std::to_string(seed);
                EXPECT_LT((dq - qg.grad()).abs().max().item<double>(), 1e-9) << where << " dq";
                EXPECT_LT((dk - kg.grad()).abs().max().item<double>(), 1e-9) << where << " dk";
                EXPECT_LT((dv - vg.grad()).abs().max().item<double>(), 1e-9) << where << " dv";
                EXPECT_LT((du - ug.grad()).abs().max().item<double>(), 1e-9) << where << " du";
                EXPECT_FALSE(du.isnan().any().item<bool>()) << where;
            }
}

// The blocked SparseK attention of the analysis (any device) against the reference: output, lse,
// and every statistic recomputed from the reference's dense attention weights; the selections'
// summary against a count over the reference's CSR lists. Small query blocks (blockElements) so
// a document spans many blocks.
TEST(SparseKAttentionBlocked, OutputStatisticsAndSelectionsMatchTheReference) {
    std::mt19937 seeds(std::random_device{}());
    std::vector<at::Device> devices{at::kCPU};
    if (at::hasCUDA()) devices.emplace_back(at::kCUDA);
    for (const at::Device& device : devices)
        for (int64_t T : {3, 40, 133})
            for (int64_t w : {1, 8})
                for (double topK : {0.0, 2.0, 3.5}) {
                    const uint64_t seed = seeds();
                    auto gen = at::detail::createCPUGenerator(seed);
                    const int64_t H = 3, D = 8, NB = kNumDistanceBins;
                    auto q = at::randn({1, H, T, D}, gen), k = at::randn({1, H, T, D}, gen), v = at::randn({1, H, T, D}, gen);
                    auto u = at::randn({1, H, T}, gen) * 1.5;
                    const double scale = 1.0 / std::sqrt(static_cast<double>(D));
                    AttentionStatsOptions o;
                    o.beyondSpan = w + 2;
                    o.sinkTokens = 2;
                    o.poolSize = 7;
                    o.queryRows = {0, T - 1, T / 2};
                    o.blockElements = 600;
                    SparseKSelectionStats sel;
                    auto [out, lse, st] = sparsek_attention_stats_aten(q.to(device), k.to(device), v.to(device), u.to(device),
                                                                        topK, w, scale, o, sel);
                    const std::string where = std::string(device.is_cuda() ? "cuda" : "cpu") + " T " + std::to_string(T) +
                                              " w " + std::to_string(w) + " k " + std::to_string(topK) + " seed " +
                                              std::to_string(seed);
                    const double tol = device.is_cuda() ? 2e-3 : 1e-4;
                    auto [out2, lse2] = sparsek_attention_aten(q, k, v, u, topK, w, scale);
                    EXPECT_LT((out2 - out.cpu()).abs().max().item<double>(), tol) << where << ": with and without statistics";
                    const int64_t Pq = std::min<int64_t>(7, T);
                    ASSERT_EQ(sel.poolRows, Pq) << where;
                    std::vector<double> cnt(static_cast<size_t>(H * NB), 0.0), picks(static_cast<size_t>(T), 0.0);
                    std::vector<double> selPool(static_cast<size_t>(H * Pq * Pq), 0.0);
                    std::vector<double> rowsInBin(static_cast<size_t>(Pq), 0.0);
                    for (int64_t i = 0; i < T; ++i) rowsInBin[static_cast<size_t>(i * Pq / T)] += 1;
                    int64_t pairs = 0;
                    for (int64_t h = 0; h < H; ++h) {
                        SparseKAttentionParams p;
                        p.topK = topK;
                        p.window = w;
                        p.scale = scale;
                        p.probabilities = true;
                        auto ref = sparsek_attention_cpu(toVector(q[0][h]), toVector(k[0][h]), toVector(v[0][h]),
                                                         toVector(u[0][h]), T, D, p);
                        EXPECT_LT((out.cpu()[0][h] - at::from_blob(ref.out.data(), {T, D}, at::kFloat)).abs().max().item<double>(), tol) << where;
                        EXPECT_LT((lse.cpu()[0][h] - at::from_blob(ref.lse.data(), {T}, at::kFloat)).abs().max().item<double>(), tol) << where;
                        std::vector<double> bins(static_cast<size_t>(NB), 0.0), pooled(static_cast<size_t>(Pq * Pq), 0.0);
                        double ent = 0, dist = 0, beyond = 0, sink = 0;
                        for (int64_t i = 0; i < T; ++i)
                            for (int64_t j = 0; j <= i; ++j) {
                                const double a = ref.probs[static_cast<size_t>(i * T + j)];
                                if (a <= 0) continue;
                                bins[static_cast<size_t>(distanceBin(i - j))] += a;
                                ent -= a * std::log(a);
                                dist += a * static_cast<double>(i - j);
                                if (i - j >= o.beyondSpan) beyond += a;
                                if (j < o.sinkTokens) sink += a;
                                pooled[static_cast<size_t>((i * Pq / T) * Pq + j * Pq / T)] += a / rowsInBin[static_cast<size_t>(i * Pq / T)];
                            }
                        auto bm = st.binMass.cpu();
                        for (int64_t b = 0; b < NB; ++b) EXPECT_NEAR(bm[h][b].item<double>(), bins[static_cast<size_t>(b)], tol * T) << where << " bin " << b;
                        EXPECT_NEAR(st.entropy.cpu()[h].item<double>(), ent, tol * T) << where;
                        EXPECT_NEAR(st.distance.cpu()[h].item<double>(), dist, tol * T * T) << where;
                        EXPECT_NEAR(st.beyondMass.cpu()[h].item<double>(), beyond, tol * T) << where;
                        EXPECT_NEAR(st.sinkMass.cpu()[h].item<double>(), sink, tol * T) << where;
                        auto pm = st.pooled.cpu();
                        for (int64_t a = 0; a < Pq; ++a)
                            for (int64_t b = 0; b < Pq; ++b)
                                EXPECT_NEAR(pm[h][a][b].item<double>(), pooled[static_cast<size_t>(a * Pq + b)], tol) << where << " cell " << a << "," << b;
                        auto rows = st.rows.cpu();
                        for (size_t r = 0; r < o.queryRows.size(); ++r)
                            for (int64_t j = 0; j < T; ++j)
                                EXPECT_NEAR(rows[static_cast<int64_t>(r)][h][j].item<double>(),
                                            ref.probs[static_cast<size_t>(o.queryRows[r] * T + j)], tol) << where << " row " << r;
                        for (int64_t i = 0; i < T; ++i)
                            for (int64_t n = ref.selectedOffsets[static_cast<size_t>(i)]; n < ref.selectedOffsets[static_cast<size_t>(i) + 1]; ++n) {
                                const int64_t j = ref.selectedKeys[static_cast<size_t>(n)];
                                cnt[static_cast<size_t>(h * NB + distanceBin(i - j))] += 1;
                                picks[static_cast<size_t>(j)] += 1.0 / H;
                                selPool[static_cast<size_t>((h * Pq + i * Pq / T) * Pq + j * Pq / T)] += 1.0 / rowsInBin[static_cast<size_t>(i * Pq / T)];
                                ++pairs;
                            }
                        for (size_t r = 0; r < o.queryRows.size(); ++r) {
                            const auto i = static_cast<size_t>(o.queryRows[r]);
                            auto keys = sel.rowKeys[r * H + static_cast<size_t>(h)];
                            std::sort(keys.begin(), keys.end());
                            ASSERT_EQ(static_cast<int64_t>(keys.size()), ref.selectedOffsets[i + 1] - ref.selectedOffsets[i]) << where;
                            for (size_t n = 0; n < keys.size(); ++n)
                                EXPECT_EQ(keys[n], ref.selectedKeys[static_cast<size_t>(ref.selectedOffsets[i]) + n]) << where;
                        }
                    }
                    EXPECT_EQ(sel.selectedPairs, pairs) << where;
                    for (size_t b = 0; b < cnt.size(); ++b) EXPECT_EQ(sel.countBins[b], cnt[b]) << where << " count bin " << b;
                    for (int64_t j = 0; j < T; ++j) EXPECT_NEAR(sel.keyPicks[static_cast<size_t>(j)], picks[static_cast<size_t>(j)], 1e-4) << where;
                    for (size_t c = 0; c < selPool.size(); ++c) EXPECT_NEAR(sel.pooled[c], selPool[c], 1e-4) << where << " selection cell " << c;
                }
}

TEST(SparseKAttentionBlocked, BadShapesAreClearErrors) {
    auto q = at::randn({1, 2, 10, 4});
    EXPECT_THROW(sparsek_attention_aten(q, q, q, at::randn({1, 2, 9}), 2.0, 3, 0.5), c10::Error);   // u too short
    EXPECT_THROW(sparsek_attention_aten(q, q, q, at::randn({1, 2, 10}), 2.0, 0, 0.5), c10::Error);  // w = 0
    auto q2 = at::randn({2, 2, 10, 4});
    EXPECT_THROW(sparsek_attention_aten(q2, q2, q2, at::randn({2, 2, 10}), 2.0, 3, 0.5), c10::Error);  // B = 2
}

// The GPU kernel's plan: tau of every query and, per block of queries, the sorted union of their
// selected keys — checked against the selection itself (fresh random scores with ties and -inf).
TEST(SparseKPlan, BlockListsAreTheUnionOfTheBlocksSelections) {
    at::manual_seed(static_cast<uint64_t>(std::random_device{}()));
    for (int64_t T : {1, 63, 64, 65, 700})
        for (double topK : {0.0, 3.5, 20.0})
            for (int64_t w : {1, 30}) {
                const int64_t B = 2, H = 2, rows = 64;
                auto u = at::round(at::randn({B, H, T}) * 8) / 4;  // ties
                u.masked_fill_(at::rand({B, H, T}) < 0.05, -std::numeric_limits<float>::infinity());
                const SparseKPlan plan = sparsek_plan(u, topK, w, rows, at::kCPU);
                const int64_t NB = (T + rows - 1) / rows;
                ASSERT_EQ(plan.blockOffsets.numel(), B * H * NB + 1);
                const int32_t* off = plan.blockOffsets.data_ptr<int32_t>();
                const int32_t* keys = plan.blockKeys.data_ptr<int32_t>();
                EXPECT_EQ(off[0], 0);
                EXPECT_EQ(off[B * H * NB], plan.blockKeys.numel());
                int64_t selected = 0, windowPairs = 0;
                for (int64_t s = 0; s < B * H; ++s) {
                    auto us = u.view({B * H, T})[s].contiguous();
                    const SparseKSelection sel = sparsek_select_cpu(us.data_ptr<float>(), T, topK, w);
                    selected += static_cast<int64_t>(sel.keys.size());
                    for (int64_t i = 0; i < T; ++i) {
                        windowPairs += std::min(i + 1, w);
                        EXPECT_EQ(plan.tau.view({B * H, T})[s][i].item<float>(), static_cast<float>(sel.tau[static_cast<size_t>(i)]));
                    }
                    for (int64_t blk = 0; blk < NB; ++blk) {
                        std::vector<int32_t> want;
                        for (int64_t i = blk * rows; i < std::min(T, (blk + 1) * rows); ++i)
                            for (int64_t n = sel.offsets[static_cast<size_t>(i)]; n < sel.offsets[static_cast<size_t>(i) + 1]; ++n)
                                want.push_back(sel.keys[static_cast<size_t>(n)]);
                        std::sort(want.begin(), want.end());
                        want.erase(std::unique(want.begin(), want.end()), want.end());
                        const std::vector<int32_t> got(keys + off[s * NB + blk], keys + off[s * NB + blk + 1]);
                        EXPECT_EQ(got, want) << "T " << T << " k " << topK << " w " << w << " seq " << s << " block " << blk;
                    }
                }
                EXPECT_EQ(plan.selectedPairs, selected);
                EXPECT_EQ(plan.windowPairs, windowPairs);
            }
    EXPECT_THROW(sparsek_plan(at::full({1, 1, 5}, NAN), 2, 1, 64, at::kCPU), c10::Error);
    EXPECT_THROW(sparsek_plan(at::zeros({1, 5}), 2, 1, 64, at::kCPU), c10::Error);
}
