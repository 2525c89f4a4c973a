// AnalysisCache: an analysis that starts from the cached bottom layers must equal a fresh one, and
// anything the cached layers depend on (their specs, the document, the statistics options) must
// invalidate them.
#include <gtest/gtest.h>

#include <random>
#include <string>

#include "engine/analysis.h"
#include "engine/errors.h"
#include "engine/model.h"

using namespace spanscope;

namespace {

constexpr int kLayers = 6;

std::shared_ptr<Model> smallModel() {
    ModelConfig c;
    c.vocabSize = 200;
    c.hiddenSize = 32;
    c.numLayers = kLayers;
    c.numHeads = 2;
    c.numKvHeads = 2;
    c.intermediateSize = 64;
    c.dtype = "float32";
    return Model::createRandom(c, 11);
}

std::vector<int32_t> randomTokens(int64_t n, uint32_t seed) {
    std::mt19937 rng(seed);
    std::vector<int32_t> t(static_cast<size_t>(n));
    for (auto& x : t) x = static_cast<int32_t>(rng() % 200u);
    return t;
}

AnalysisOptions options(const std::string& pattern, AnalysisCache* cache) {
    AnalysisOptions o;
    o.pattern = parsePattern(pattern, kLayers);
    o.beyondSpan = 16;
    o.poolSize = 12;
    o.queryRows = {5, 90};
    o.cache = cache;
    return o;
}

void expectNear(const std::vector<float>& a, const std::vector<float>& b, const std::string& what) {
    ASSERT_EQ(a.size(), b.size()) << what;
    for (size_t i = 0; i < a.size(); ++i) ASSERT_NEAR(a[i], b[i], 1e-6 + 1e-6 * std::abs(b[i])) << what << " [" << i << "]";
}

void expectHeadNear(const HeadStats& a, const HeadStats& b, const std::string& what) {
    ASSERT_EQ(a.binMass.size(), b.binMass.size()) << what;
    for (size_t i = 0; i < a.binMass.size(); ++i) EXPECT_NEAR(a.binMass[i], b.binMass[i], 1e-9) << what << " bin " << i;
    EXPECT_NEAR(a.entropy, b.entropy, 1e-9) << what;
    EXPECT_NEAR(a.meanDistance, b.meanDistance, 1e-9 * (1 + b.meanDistance)) << what;
    EXPECT_NEAR(a.beyondMass, b.beyondMass, 1e-9) << what;
    EXPECT_NEAR(a.sinkMass, b.sinkMass, 1e-9) << what;
}

// Everything but the timings.
void expectSameAnalysis(const AnalysisResult& got, const AnalysisResult& want) {
    EXPECT_EQ(got.pattern.text(), want.pattern.text());
    expectNear(got.tokenLoss, want.tokenLoss, "token loss");
    EXPECT_NEAR(got.meanLoss, want.meanLoss, 1e-7);
    ASSERT_EQ(got.layers.size(), want.layers.size());
    for (size_t l = 0; l < want.layers.size(); ++l) {
        const auto &g = got.layers[l], &w = want.layers[l];
        const std::string at = "layer " + std::to_string(l) + " (" + w.spec.text() + ")";
        EXPECT_EQ(g.spec.text(), w.spec.text()) << at;
        EXPECT_EQ(g.cost.pairs, w.cost.pairs) << at;
        ASSERT_EQ(g.heads.size(), w.heads.size()) << at;
        for (size_t h = 0; h < w.heads.size(); ++h) expectHeadNear(g.heads[h], w.heads[h], at + " head " + std::to_string(h));
        expectHeadNear(g.headMean, w.headMean, at + " head mean");
        EXPECT_EQ(g.poolRows, w.poolRows) << at;
        expectNear(g.pooled, w.pooled, at + " pooled");
        expectNear(g.beyondPerToken, w.beyondPerToken, at + " beyond per token");
        expectNear(g.entropyPerToken, w.entropyPerToken, at + " entropy per token");
        expectNear(g.rows, w.rows, at + " rows");
    }
}

}  // namespace

TEST(AnalysisCache, MovingTheBoundaryReusesTheLowerFullLayersAndEqualsAFreshAnalysis) {
    auto model = smallModel();
    auto tokens = randomTokens(150, 1);
    AnalysisCache cache;
    analyze(*model, tokens, options("full*4,window:16*2", &cache));
    EXPECT_EQ(cache.reusedLayers(), 0);
    EXPECT_EQ(cache.cachedLayers(), kLayers);
    // Boundary 4 -> 2: layers 0-1 are shared.
    AnalysisResult down = analyze(*model, tokens, options("full*2,window:16*4", &cache));
    EXPECT_EQ(cache.reusedLayers(), 2);
    expectSameAnalysis(down, analyze(*model, tokens, options("full*2,window:16*4", nullptr)));
    // Boundary 2 -> 5: still only layers 0-1.
    AnalysisResult up = analyze(*model, tokens, options("full*5,window:16", &cache));
    EXPECT_EQ(cache.reusedLayers(), 2);
    expectSameAnalysis(up, analyze(*model, tokens, options("full*5,window:16", nullptr)));
    // The same request again: every layer comes from the cache.
    AnalysisResult again = analyze(*model, tokens, options("full*5,window:16", &cache));
    EXPECT_EQ(cache.reusedLayers(), kLayers);
    expectSameAnalysis(again, up);
}

TEST(AnalysisCache, AChangedLayerBelowTheBoundaryInvalidatesTheLayersAboveIt) {
    auto model = smallModel();
    auto tokens = randomTokens(140, 2);
    AnalysisCache cache;
    analyze(*model, tokens, options("full*3,block:32*3", &cache));
    // Layer 1 becomes a window layer: only layer 0 stays valid.
    const std::string changed = "full,window:8,full,block:32*3";
    AnalysisResult r = analyze(*model, tokens, options(changed, &cache));
    EXPECT_EQ(cache.reusedLayers(), 1);
    expectSameAnalysis(r, analyze(*model, tokens, options(changed, nullptr)));
    // Back to the first pattern: layer 1 no longer matches, so the cached layers above it
    // (computed on the window layer's output) must not be used.
    AnalysisResult back = analyze(*model, tokens, options("full*3,block:32*3", &cache));
    EXPECT_EQ(cache.reusedLayers(), 1);
    expectSameAnalysis(back, analyze(*model, tokens, options("full*3,block:32*3", nullptr)));
    // Layer 0 changed: nothing is reused.
    AnalysisResult bottom = analyze(*model, tokens, options("window:8,full*2,block:32*3", &cache));
    EXPECT_EQ(cache.reusedLayers(), 0);
    expectSameAnalysis(bottom, analyze(*model, tokens, options("window:8,full*2,block:32*3", nullptr)));
}

TEST(AnalysisCache, OtherStatisticsOptionsDocumentOrModelStartAfresh) {
    auto model = smallModel();
    auto tokens = randomTokens(120, 3);
    AnalysisCache cache;
    analyze(*model, tokens, options("full*3,window:16*3", &cache));
    auto rows = options("full*3,window:16*3", &cache);
    rows.queryRows = {7};
    AnalysisResult r = analyze(*model, tokens, rows);
    EXPECT_EQ(cache.reusedLayers(), 0) << "other query rows";
    rows.cache = nullptr;
    expectSameAnalysis(r, analyze(*model, tokens, rows));

    auto zoom = options("full*3,window:16*3", &cache);
    zoom.queryRows = {7};
    zoom.mapQ0 = 10;
    zoom.mapQ1 = 40;
    analyze(*model, tokens, zoom);
    EXPECT_EQ(cache.reusedLayers(), 0) << "other map region";

    auto other = tokens;
    other[60] = (other[60] + 1) % 200;
    AnalysisResult d = analyze(*model, other, zoom);
    EXPECT_EQ(cache.reusedLayers(), 0) << "one token changed";
    zoom.cache = nullptr;
    expectSameAnalysis(d, analyze(*model, other, zoom));

    zoom.cache = &cache;
    ModelConfig c = model->config();
    auto model2 = Model::createRandom(c, 12);
    AnalysisResult m2 = analyze(*model2, other, zoom);
    EXPECT_EQ(cache.reusedLayers(), 0) << "another model";
    zoom.cache = nullptr;
    expectSameAnalysis(m2, analyze(*model2, other, zoom));
}

TEST(AnalysisCache, ACancelledAnalysisLeavesOnlyTheLayersItFinished) {
    auto model = smallModel();
    auto tokens = randomTokens(100, 4);
    AnalysisCache cache;
    analyze(*model, tokens, options("full*4,window:16*2", &cache));
    auto o = options("full*2,block:16*4", &cache);
    int calls = 0;
    o.cancelled = [&] { return ++calls > 2; };  // layers 2 and 3 run, then it stops
    EXPECT_THROW(analyze(*model, tokens, o), Cancelled);
    EXPECT_EQ(cache.cachedLayers(), 4);
    o.cancelled = {};
    AnalysisResult r = analyze(*model, tokens, o);
    EXPECT_EQ(cache.reusedLayers(), 4);
    o.cache = nullptr;
    expectSameAnalysis(r, analyze(*model, tokens, o));
}

TEST(AnalysisCache, KeepsHiddenStatesOnlyForTheBottomLayersThatFitTheBudget) {
    auto model = smallModel();
    auto tokens = randomTokens(100, 5);
    AnalysisCache cache(2 * 100 * 32 * 4);  // two layers of (1, 100, 32) float32
    analyze(*model, tokens, options("full*4,window:16*2", &cache));
    EXPECT_EQ(cache.cachedLayers(), 2);
    AnalysisResult r = analyze(*model, tokens, options("full*3,window:16*3", &cache));
    EXPECT_EQ(cache.reusedLayers(), 2);
    expectSameAnalysis(r, analyze(*model, tokens, options("full*3,window:16*3", nullptr)));
}
