// The CUDA path (bf16, SDPA for full layers, blocked span attention otherwise) against the exact
// CPU analysis. Skipped where no GPU is present; run on the GPU machine (scripts/gpu_check.sh).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <random>

#include "engine/analysis.h"
#include "engine/model.h"
#include "tests/test_util.h"

using namespace spanscope;

TEST(AnalysisCuda, Bf16CudaAnalysisMatchesExactCpuAnalysisOnARaggedDocument) {
    if (!cudaAvailable()) GTEST_SKIP() << "no CUDA GPU";
    ModelConfig c;
    c.vocabSize = 500;
    c.hiddenSize = 128;
    c.numLayers = 4;
    c.numHeads = 2;
    c.numKvHeads = 2;
    c.intermediateSize = 256;
    c.dtype = "bfloat16";
    test::TempDir tmp("spanscope-cuda");
    Model::createRandom(c, 11)->save(tmp.path());
    auto cpu = Model::load(tmp.path(), "cpu");
    auto gpu = Model::load(tmp.path(), "cuda");
    std::mt19937 rng(std::random_device{}());
    std::vector<int32_t> tokens(1237);
    for (auto& t : tokens) t = static_cast<int32_t>(rng() % 500u);
    for (bool stats : {false, true}) {
        AnalysisOptions o;
        o.pattern = parsePattern("full,window:100,block:128,block:64+prev", 4);
        o.withStats = stats;
        o.poolSize = 16;
        AnalysisResult a = analyze(*cpu, tokens, o), b = analyze(*gpu, tokens, o);
        EXPECT_EQ(b.device.substr(0, 4), "cuda");
        EXPECT_NEAR(a.meanLoss, b.meanLoss, 0.02) << "stats=" << stats;
        double maxDiff = 0;
        for (size_t t = 0; t < a.tokenLoss.size(); ++t) maxDiff = std::max(maxDiff, std::fabs(double(a.tokenLoss[t]) - b.tokenLoss[t]));
        EXPECT_LT(maxDiff, 0.2) << "stats=" << stats;
        if (!stats) continue;
        for (size_t l = 0; l < a.layers.size(); ++l) {
            EXPECT_NEAR(a.layers[l].headMean.entropy, b.layers[l].headMean.entropy, 0.02) << "layer " << l;
            EXPECT_NEAR(a.layers[l].headMean.meanDistance, b.layers[l].headMean.meanDistance,
                        0.02 * a.layers[l].headMean.meanDistance + 0.5) << "layer " << l;
            for (size_t bin = 0; bin < a.layers[l].headMean.binMass.size(); ++bin)
                EXPECT_NEAR(a.layers[l].headMean.binMass[bin], b.layers[l].headMean.binMass[bin], 0.01);
        }
    }
}
