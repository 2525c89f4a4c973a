#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include <cmath>
#include <random>
#include <string>

#include "engine/analysis.h"
#include "engine/errors.h"
#include "engine/model.h"
#include "engine/model_impl.h"
#include "kernels/attention_cpu.h"
#include "kernels/sparsek_attention_torch.h"

using namespace spanscope;

namespace {

// trainedPattern: with sparsek layers, the model gets their scoring networks (as training makes them).
std::shared_ptr<Model> tinyModel(uint64_t seed, const std::string& trainedPattern = "") {
    ModelConfig c;
    c.vocabSize = 200;
    c.hiddenSize = 32;
    c.numLayers = 4;
    c.numHeads = 2;
    c.numKvHeads = 2;
    c.intermediateSize = 64;
    c.dtype = "float32";
    c.trainedPattern = trainedPattern;
    return Model::createRandom(c, seed);
}

std::vector<int32_t> randomTokens(int64_t n, uint32_t seed) {
    std::mt19937 rng(seed);
    std::vector<int32_t> t(static_cast<size_t>(n));
    for (auto& x : t) x = static_cast<int32_t>(rng() % 200u);
    return t;
}

}  // namespace

TEST(Analysis, PerTokenLossEqualsLogSoftmaxOfTheLogits) {
    auto model = tinyModel(1);
    auto tokens = randomTokens(75, 2);
    AnalysisOptions o;
    o.pattern = parsePattern("full*2,window:16*2", 4);
    AnalysisResult r = analyze(*model, tokens, o);
    ASSERT_EQ(r.tokenLoss.size(), 74u);
    at::InferenceMode guard;
    auto x = runLayers(model->impl(), embedTokens(model->impl(), tokens), 0, 4, patternAttention(o.pattern, model->impl()));
    auto lp = at::log_softmax(logits(model->impl(), x)[0], -1);
    double sum = 0;
    for (size_t t = 0; t + 1 < tokens.size(); ++t) {
        double want = -lp[static_cast<int64_t>(t)][tokens[t + 1]].item<double>();
        ASSERT_NEAR(r.tokenLoss[t], want, 1e-4) << "position " << t;
        sum += want;
    }
    EXPECT_NEAR(r.meanLoss, sum / 74.0, 1e-5);
    EXPECT_NEAR(r.perplexity, std::exp(r.meanLoss), 1e-6 * r.perplexity);
    // A random model over 200 tokens is near-uniform: loss close to log(200).
    EXPECT_NEAR(r.meanLoss, std::log(200.0), 0.5);
}

TEST(Analysis, StatisticsAreConsistentPerLayerKind) {
    auto model = tinyModel(3);
    auto tokens = randomTokens(150, 4);
    AnalysisOptions o;
    o.pattern = parsePattern("full,window:16,block:32,block:8+prev", 4);
    o.beyondSpan = 16;
    o.poolSize = 10;
    o.queryRows = {0, 77, 149};
    AnalysisResult r = analyze(*model, tokens, o);
    ASSERT_EQ(r.layers.size(), 4u);
    for (const auto& la : r.layers) {
        ASSERT_EQ(la.heads.size(), 2u);
        double total = 0;
        for (double b : la.headMean.binMass) total += b;
        EXPECT_NEAR(total, 1.0, 1e-5) << la.spec.text();
        EXPECT_EQ(la.poolRows, 10);
        EXPECT_EQ(la.poolCols, 10);
        EXPECT_EQ(la.pooled.size(), 2u * 10 * 10);
        EXPECT_EQ(la.rows.size(), 3u * 2 * 150);
        EXPECT_EQ(la.beyondPerToken.size(), 150u);
        // Every exact row is a distribution over attended keys only.
        for (size_t ri = 0; ri < 3; ++ri)
            for (int h = 0; h < 2; ++h) {
                const int64_t i = o.queryRows[ri];
                double sum = 0;
                for (int64_t j = 0; j < 150; ++j) {
                    float v = la.rows[(ri * 2 + static_cast<size_t>(h)) * 150 + static_cast<size_t>(j)];
                    if (!la.spec.allows(i, j)) {
                        ASSERT_EQ(v, 0.0f) << la.spec.text() << " i=" << i << " j=" << j;
                    }
                    sum += v;
                }
                EXPECT_NEAR(sum, 1.0, 1e-5);
            }
        EXPECT_GT(la.headMean.entropy, 0.0);
        EXPECT_NEAR(la.headMean.entropy, [&] {
            double s = 0;
            for (float e : la.entropyPerToken) s += e;
            return s / 150.0;
        }(), 1e-4);
    }
    EXPECT_EQ(r.layers[1].headMean.beyondMass, 0.0);  // a window of 16 never reaches distance 16
    EXPECT_GT(r.layers[0].headMean.beyondMass, 0.3);  // a near-uniform full layer mostly does
    EXPECT_LE(r.layers[1].headMean.meanDistance, 15.0);
    EXPECT_GT(r.layers[0].headMean.meanDistance, r.layers[1].headMean.meanDistance);
}

TEST(Analysis, SweepMatchesSeparateAnalysesAtEveryBoundary) {
    auto model = tinyModel(5);
    auto tokens = randomTokens(90, 6);
    const LayerSpec sparse = LayerSpec::window(8);
    int calls = 0;
    auto points = sweepBoundary(*model, tokens, sparse, [&](int, int) { ++calls; });
    ASSERT_EQ(points.size(), 5u);
    EXPECT_EQ(calls, 4 + 4 * 5 / 2);
    for (int l = 0; l <= 4; ++l) {
        AnalysisOptions o;
        o.pattern = masformerPattern(4, l, sparse);
        o.withStats = false;
        AnalysisResult r = analyze(*model, tokens, o);
        EXPECT_NEAR(points[static_cast<size_t>(l)].meanLoss, r.meanLoss, 1e-5) << "l=" << l;
        EXPECT_NEAR(points[static_cast<size_t>(l)].relativeCost, r.cost.relativeCost, 1e-12);
    }
    EXPECT_DOUBLE_EQ(points[4].relativeCost, 1.0);
    EXPECT_LT(points[0].relativeCost, 0.25);
}

TEST(Analysis, CancellationBetweenLayersThrowsCancelled) {
    auto model = tinyModel(7);
    auto tokens = randomTokens(50, 8);
    AnalysisOptions o;
    o.pattern = parsePattern("full", 4);
    int layersDone = 0;
    o.progress = [&](int done, int) { layersDone = done; };
    o.cancelled = [&] { return layersDone >= 2; };
    EXPECT_THROW(analyze(*model, tokens, o), Cancelled);
    EXPECT_EQ(layersDone, 2);
}

TEST(Analysis, BadRequestsAreInputErrors) {
    auto model = tinyModel(9);
    AnalysisOptions o;
    o.pattern = parsePattern("full", 3);
    EXPECT_THROW(analyze(*model, randomTokens(20, 1), o), InputError);  // 3-layer pattern, 4-layer model
    o.pattern = parsePattern("full", 4);
    EXPECT_THROW(analyze(*model, {5}, o), InputError);
    EXPECT_THROW(analyze(*model, {5, 200}, o), InputError);  // token outside the vocabulary
    o.pattern = parsePattern("sparsek:4/8", 4);  // no scoring network in this model
    EXPECT_THROW(analyze(*model, randomTokens(20, 1), o), InputError);
}

// A model with SparseK scoring networks (as training makes them): the analysis's loss equals a
// forward pass through the dense differentiable SparseK of training, and its sparsek layers report
// their selections (k per query once the prefix is long enough), the others none.
TEST(Analysis, SparseKLayersMatchTrainingsAttentionAndReportSelections) {
    const std::string trained = "full*2,sparsek:3/8*2";
    auto model = tinyModel(21, trained);
    ASSERT_TRUE(model->impl().layers[2].sparsekScore.defined());
    auto tokens = randomTokens(97, 5);
    AnalysisOptions o;
    o.pattern = parsePattern(trained, 4);
    o.queryRows = {96};
    AnalysisResult r = analyze(*model, tokens, o);

    at::InferenceMode guard;
    const ModelImpl& m = model->impl();
    AttentionFn dense = [&](int l, const at::Tensor& q, const at::Tensor& k, const at::Tensor& v) {
        const LayerSpec& spec = o.pattern.layers[static_cast<size_t>(l)];
        if (spec.kind != AttentionKind::SparseK) return at::scaled_dot_product_attention(q, k, v, {}, 0.0, true);
        return sparsek_attention_torch(q, k, v, sparsekKeyScores(m, l, v), static_cast<double>(spec.topK), spec.span,
                                       1.0 / std::sqrt(static_cast<double>(q.size(-1))));
    };
    auto x = runLayers(m, embedTokens(m, tokens), 0, 4, dense);
    auto lp = at::log_softmax(logits(m, x)[0], -1);
    for (size_t t = 0; t + 1 < tokens.size(); ++t)
        ASSERT_NEAR(r.tokenLoss[t], -lp[static_cast<int64_t>(t)][tokens[t + 1]].item<double>(), 1e-4) << "position " << t;

    for (int l = 0; l < 4; ++l) {
        const SparseKSelectionStats& s = r.layers[static_cast<size_t>(l)].selections;
        if (l < 2) {
            EXPECT_TRUE(s.countBins.empty()) << "full layer " << l;
            continue;
        }
        ASSERT_EQ(s.countBins.size(), static_cast<size_t>(2 * kNumDistanceBins));
        // Queries 8..96 have 1..89 candidates and select min(3, candidates) keys' worth of mask;
        // the count is at least that (a fractional tail may add keys).
        double perQuery = 0, maskPerQuery = 0;
        for (size_t b = 0; b < s.countBins.size(); ++b) {
            perQuery += s.countBins[b] / 2;
            maskPerQuery += s.maskBins[b] / 2;
            if (b % kNumDistanceBins < 4) {
                EXPECT_EQ(s.countBins[b], 0.0) << "no selection within the window (distance < 8)";
            }
        }
        const double want = (1 + 2 + 3.0 * 87) / 97.0;
        EXPECT_NEAR(maskPerQuery, want, 1e-4) << "layer " << l;
        EXPECT_GE(perQuery, want - 1e-9) << "layer " << l;
        EXPECT_EQ(s.rowKeys.size(), 2u);
        EXPECT_GE(s.rowKeys[0].size(), 3u);
        for (int32_t j : s.rowKeys[0]) EXPECT_LE(j, 96 - 8);
        // The last query's attention row is zero outside its window and its selections.
        const auto& row = r.layers[static_cast<size_t>(l)].rows;
        for (int64_t j = 0; j <= 96 - 8; ++j) {
            const bool selected = std::find(s.rowKeys[0].begin(), s.rowKeys[0].end(), j) != s.rowKeys[0].end();
            if (selected) {
                EXPECT_GT(row[static_cast<size_t>(j)], 0.0f) << "layer " << l << " key " << j;
            } else {
                EXPECT_EQ(row[static_cast<size_t>(j)], 0.0f) << "layer " << l << " key " << j;
            }
        }
    }
}
