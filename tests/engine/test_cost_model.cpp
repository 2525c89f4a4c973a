#include <gtest/gtest.h>

#include "engine/cost_model.h"

using namespace spanscope;

TEST(CostModel, ReproducesMasformerPaperHeadline27Point1PercentForL24l4Block1024n8192) {
    LayerPattern p = masformerPattern(24, 4, LayerSpec::block(1024));
    CostSummary s = patternCost(p, {8192, 16, 64, 2, 128});
    EXPECT_NEAR(s.relativeCost, 0.271, 0.0005) << s.relativeCost;
    EXPECT_NEAR(masformerClosedFormCost(24, 4, 1024, 8192), 0.2708, 0.0001);
}

TEST(CostModel, AllFullCostsOneAndPairsAreExact) {
    CostSummary s = patternCost(parsePattern("full", 12), {1000, 4, 64, 2, 128});
    EXPECT_DOUBLE_EQ(s.relativeCost, 1.0);
    EXPECT_EQ(s.fullPairsPerLayer, 1000 * 1001 / 2);
    EXPECT_DOUBLE_EQ(s.layers[0].flops, 4.0 * 64 * 4 * (1000.0 * 1001 / 2));
    EXPECT_DOUBLE_EQ(s.flops, s.fullFlops);
}

TEST(CostModel, WindowPairsKvCacheAndBytesFollowTheSpan) {
    const int64_t n = 10000, w = 512;
    LayerCost c = layerCost(LayerSpec::window(w), {n, 8, 64, 2, 128});
    EXPECT_EQ(c.pairs, w * (w + 1) / 2 + (n - w) * w);
    EXPECT_DOUBLE_EQ(c.kvCacheBytes, 2.0 * w * 8 * 64 * 2);
    LayerCost full = layerCost(LayerSpec::full(), {n, 8, 64, 2, 128});
    EXPECT_DOUBLE_EQ(full.kvCacheBytes, 2.0 * n * 8 * 64 * 2);
    EXPECT_LT(c.bytes, full.bytes / 5);  // a window reads far fewer key rows than full attention
    EXPECT_GT(c.bytes, 2.0 * n * 8 * 64 * 2);  // but at least Q and O
}

TEST(CostModel, CostIsMonotoneInTheBoundary) {
    double last = -1;
    for (int l = 0; l <= 12; ++l) {
        double c = patternCost(masformerPattern(12, l, LayerSpec::window(256)), {4096, 4, 64, 2, 128}).relativeCost;
        EXPECT_GT(c, last) << "l=" << l;
        last = c;
    }
    EXPECT_DOUBLE_EQ(last, 1.0);
}

// SparseK's bytes: the window's rows plus, per query tile, the rows gathered for its queries'
// selections — at most k + tileQ (selections persist along the document), at most k·tileQ, at most
// the tile's candidates. Counted by hand for n = 40, w = 8, k = 4, tiles of 16: tile [0, 16) gathers
// its 8 candidates, [16, 32) k + 16 = 20 of 24, [32, 40) k + 8 = 12 of 32: 40 rows beyond the window.
TEST(CostModel, SparseKBytesCountEachTilesGatheredRowsOnce) {
    const CostParams p{40, 2, 64, 2, 16};
    const LayerCost sk = layerCost(LayerSpec::sparseK(4, 8), p), win = layerCost(LayerSpec::window(8), p);
    EXPECT_DOUBLE_EQ(sk.bytes - win.bytes, 2.0 * 40 * 2 * 64 * 2);
    // k = 0 gathers nothing; a budget beyond the document gathers every candidate of each tile once.
    EXPECT_DOUBLE_EQ(layerCost(LayerSpec::sparseK(0, 8), p).bytes, win.bytes);
    EXPECT_DOUBLE_EQ(layerCost(LayerSpec::sparseK(1000, 8), p).bytes - win.bytes, 2.0 * (8 + 24 + 32) * 2 * 64 * 2);
    // On a long document SparseK moves far less than all-full attention (each tile gathers about
    // k + tileQ rows, not k per query).
    const CostParams big{8192, 4, 64, 2, 128};
    EXPECT_LT(layerCost(LayerSpec::sparseK(128, 384), big).bytes, layerCost(LayerSpec::full(), big).bytes / 4);
}
