// The Document, Layers and Compare views' figures (engine/view_figures.h, figures.h) on small
// hand-made analyses: tints, the text window, split UTF-8 characters, CSV escaping, and the files.
#include <gtest/gtest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "engine/errors.h"
#include "engine/view_figures.h"

namespace spanscope {
namespace {

// T = 5 tokens of "aé\nb," split so that 'é' (C3 A9) spans tokens 0 and 1; 2 layers (full, then
// window:2), 2 heads; an exact row for query 3 in every layer.
struct Fixture {
    std::string text = "a\xC3\xA9\nb,";
    std::vector<std::pair<uint32_t, uint32_t>> offsets = {{0, 2}, {2, 3}, {3, 4}, {4, 5}, {5, 6}};
    std::vector<int32_t> ids = {10, 11, 12, 13, 14};
    AnalysisResult a;

    Fixture() {
        a.pattern = masformerPattern(2, 1, LayerSpec::window(2));
        a.numTokens = 5;
        a.beyondSpan = 2;
        a.tokenLoss = {1.0f, 2.0f, 3.0f, 4.0f};
        a.queryRows = {3};
        for (int l = 0; l < 2; ++l) {
            LayerAnalysis la;
            la.spec = a.pattern.layers[static_cast<size_t>(l)];
            for (int h = 0; h < 2; ++h) {
                HeadStats s;
                s.beyondMass = 0.1 * (h + 1) + l;
                s.meanDistance = 10.0 * (h + 1);
                la.heads.push_back(s);
            }
            la.headMean.beyondMass = 0.15 + l;
            la.beyondPerToken = {0.0f, 0.1f, 0.2f, 0.3f, 0.4f};
            // (R=1, H=2, T=5): head 0 puts everything on key 3, head 1 spreads over keys 0..3.
            la.rows = {0, 0, 0, 1, 0, 0.25f, 0.25f, 0.25f, 0.25f, 0};
            la.cost.pairs = 15 - 6 * l;
            la.cost.shareOfFull = l ? 0.5 : 1.0;
            a.layers.push_back(la);
        }
        a.meanLoss = 2.5;
        a.perplexity = std::exp(2.5);
        a.cost.relativeCost = 0.8;
    }
    DocumentTextFigure figure(const ViewSelection& s, const std::vector<float>* full = nullptr) const {
        return documentTextFigure(a, full, text, offsets, ids, s);
    }
};

std::vector<std::string> csvLines(const std::string& csv) {
    std::vector<std::string> lines;
    std::istringstream in(csv);
    for (std::string l; std::getline(in, l);) lines.push_back(l);
    return lines;
}

TEST(TextWindow, DefaultsCentreOnTheQueryAndClampToTheDocument) {
    ViewSelection s;
    resolveTextWindow(s, 10000);
    EXPECT_EQ(s.textFirst, 0);
    EXPECT_EQ(s.textCount, kDefaultTextTokens);
    s = {};
    s.query = 5000;
    resolveTextWindow(s, 10000);
    EXPECT_EQ(s.textFirst, 5000 - kDefaultTextTokens / 2);
    s = {};
    s.query = 9990;
    resolveTextWindow(s, 10000);
    EXPECT_EQ(s.textFirst + s.textCount, 10000);
    s = {};
    s.textFirst = 50, s.textCount = 1000000;
    resolveTextWindow(s, 100);
    EXPECT_EQ(s.textFirst, 0);
    EXPECT_EQ(s.textCount, 100);
}

TEST(DocumentTextFigure, LossTintIsEachTokensOwnLossAndTheFirstHasNone) {
    Fixture fx;
    const DocumentTextFigure f = fx.figure({});
    ASSERT_EQ(f.values.size(), 5u);
    EXPECT_TRUE(std::isnan(f.values[0]));
    EXPECT_FLOAT_EQ(f.values[1], 1.0f);
    EXPECT_FLOAT_EQ(f.values[4], 4.0f);
    EXPECT_EQ(f.lo, 0.0f);
    EXPECT_FLOAT_EQ(f.hi, 3.0f);  // the 99th percentile of 4 values: index floor(0.99 * 3) = 2
    EXPECT_FALSE(f.diverging);
}

TEST(DocumentTextFigure, SplitCharacterShowsWholeWhereItBeginsAndCsvKeepsTheBytes) {
    Fixture fx;
    const DocumentTextFigure f = fx.figure({});
    EXPECT_EQ(f.display[0], "a\xC3\xA9");
    EXPECT_EQ(f.display[1], "");
    EXPECT_EQ(f.display[2], "\n");
    EXPECT_EQ(f.text[0], "a\xC3");
    const auto lines = csvLines(figureCsv(f));
    ASSERT_EQ(lines.size(), 6u);
    EXPECT_EQ(lines[0], "position,token_id,text,loss,loss_all_full,loss_minus_all_full,attention,beyond_span_mass,sparsek_selection");
    EXPECT_EQ(lines[1].substr(0, 13), "0,10,a\\xC3,,,");
    EXPECT_EQ(lines[2].substr(0, 11), "1,11,\\xA9,1");
    EXPECT_EQ(lines[3].substr(0, 9), "2,12,\\n,2");
    EXPECT_EQ(lines[5].substr(0, 10), "4,14,\",\",4");  // a comma is quoted
}

TEST(DocumentTextFigure, WindowStartingInsideACharacterSkipsItsContinuationBytes) {
    Fixture fx;
    ViewSelection s;
    s.textFirst = 1, s.textCount = 2;
    const DocumentTextFigure f = fx.figure(s);
    ASSERT_EQ(f.display.size(), 2u);
    EXPECT_EQ(f.first, 1);
    EXPECT_EQ(f.display[0], "");  // é was shown by token 0, outside the window
    EXPECT_EQ(f.display[1], "\n");
}

TEST(DocumentTextFigure, DeltaTintNeedsTheAllFullLossUnlessThePatternIsAllFull) {
    Fixture fx;
    ViewSelection s;
    s.tint = TokenTint::DeltaLoss;
    EXPECT_TRUE(fx.figure(s).values.empty());
    const std::vector<float> full = {1.5f, 2.0f, 2.0f, 4.0f};
    const DocumentTextFigure f = fx.figure(s, &full);
    ASSERT_EQ(f.values.size(), 5u);
    EXPECT_FLOAT_EQ(f.values[1], -0.5f);
    EXPECT_FLOAT_EQ(f.values[3], 1.0f);
    EXPECT_TRUE(f.diverging);
    EXPECT_FLOAT_EQ(f.lo, -f.hi);
    fx.a.pattern = masformerPattern(2, 2, LayerSpec::window(2));  // all full: its own loss is the baseline
    const DocumentTextFigure g = fx.figure(s);
    ASSERT_EQ(g.values.size(), 5u);
    EXPECT_FLOAT_EQ(g.values[2], 0.0f);
}

TEST(DocumentTextFigure, AttentionTintIsTheQueryRowOfTheLayerAndHead) {
    Fixture fx;
    ViewSelection s;
    s.tint = TokenTint::Attention;
    s.query = 3;
    s.layer = 1;
    s.head = 1;
    DocumentTextFigure f = fx.figure(s);
    ASSERT_EQ(f.attention.size(), 5u);
    EXPECT_FLOAT_EQ(f.attention[0], 0.25f);
    EXPECT_TRUE(std::isnan(f.attention[4]));  // after the query
    EXPECT_TRUE(f.logScale);
    EXPECT_FLOAT_EQ(f.values[2], std::log10(0.25f));
    s.head = -1;  // head mean: (0 + 0.25) / 2 on key 0, (1 + 0.25) / 2 on key 3
    f = fx.figure(s);
    EXPECT_FLOAT_EQ(f.attention[0], 0.125f);
    EXPECT_FLOAT_EQ(f.attention[3], 0.625f);
    EXPECT_FLOAT_EQ(f.hi, std::log10(0.625f));
    s.query = 2;  // no exact row: no tint, a caption that says so
    f = fx.figure(s);
    EXPECT_TRUE(f.values.empty());
    EXPECT_NE(f.caption.find("not in this analysis"), std::string::npos);
}

TEST(DocumentTextFigure, SelectionsTintIsTheQuerysMaskOrHowOftenEachTokenWasPicked) {
    Fixture fx;
    ViewSelection s;
    s.tint = TokenTint::Selections;
    s.layer = 0;  // a full layer: no selections, a caption that says so
    DocumentTextFigure f = fx.figure(s);
    EXPECT_TRUE(f.values.empty());
    EXPECT_NE(f.caption.find("not SparseK"), std::string::npos) << f.caption;
    // Layer 1 as a SparseK layer (2 heads): query 3 selected key 0 (m 1 and 0.5) and key 1 (head 1, m 0.25).
    LayerAnalysis& la = fx.a.layers[1];
    la.spec = LayerSpec::sparseK(1, 2);
    la.selections.countBins.assign(2 * kNumDistanceBins, 0.0);
    la.selections.countBins[2] = 0.4;  // per-query means: 0.4 + 0.6 keys per query over the two heads
    la.selections.countBins[kNumDistanceBins + 2] = 0.6;
    la.selections.maskBins = la.selections.countBins;
    la.selections.keyPicks = {3.0f, 1.5f, 0.0f, 0.0f, 0.0f};
    la.selections.rowKeys = {{0}, {0, 1}};
    la.selections.rowMask = {{1.0f}, {0.5f, 0.25f}};
    s.layer = 1;
    f = fx.figure(s);  // no query: picks per token
    ASSERT_EQ(f.values.size(), 5u);
    EXPECT_FLOAT_EQ(f.values[0], 3.0f);
    EXPECT_FLOAT_EQ(f.values[1], 1.5f);
    EXPECT_NE(f.caption.find("0.5 keys per query"), std::string::npos) << f.caption;
    s.query = 3;  // its own selections, head mean
    f = fx.figure(s);
    EXPECT_FLOAT_EQ(f.values[0], 0.75f);
    EXPECT_FLOAT_EQ(f.values[1], 0.125f);
    EXPECT_TRUE(std::isnan(f.values[2]));
    EXPECT_FLOAT_EQ(f.hi, 1.0f);
    const std::vector<std::string> lines = csvLines(figureCsv(f));
    EXPECT_NE(lines[0].find(",sparsek_selection"), std::string::npos);
    EXPECT_EQ(lines[1].substr(lines[1].rfind(',') + 1), "0.75");
    s.head = 1;
    f = fx.figure(s);
    EXPECT_FLOAT_EQ(f.values[0], 0.5f);
    EXPECT_FLOAT_EQ(f.values[1], 0.25f);
    EXPECT_EQ(parseTokenTint("selections"), TokenTint::Selections);
}

TEST(LayerStackFigure, RowsAreTheSelectedHeadsStatisticsWithTheBoundary) {
    Fixture fx;
    ViewSelection s;
    s.head = 1;
    s.layer = 1;
    const LayerStackFigure f = layerStackFigure(fx.a, s);
    EXPECT_EQ(f.boundary, 1);
    ASSERT_EQ(f.layers.size(), 2u);
    EXPECT_DOUBLE_EQ(f.layers[1].beyondMass, 1.2);
    const auto lines = csvLines(figureCsv(f));
    ASSERT_EQ(lines.size(), 3u);
    EXPECT_EQ(lines[1].substr(0, 18), "0,full,full,0,1,15");
    EXPECT_EQ(lines[2].substr(0, 28), "1,window:2,window,2,0,9,0.5,");
}

TEST(CompareFigures, DifferencesAreCompareMinusCurrentAndDocumentsMustMatch) {
    Fixture fx;
    AnalysisResult other = fx.a;
    other.pattern = masformerPattern(2, 2, LayerSpec::window(2));
    other.layers[1].spec = LayerSpec::full();
    other.meanLoss = 2.0;
    other.tokenLoss = {1.0f, 1.0f, 3.0f, 5.0f};
    const CompareLayersFigure f = compareLayersFigure(fx.a, other, -1, 2);
    const std::string csv = figureCsv(f);
    EXPECT_NE(csv.find("all,mean_loss,2.5,2,-0.5\n"), std::string::npos) << csv;
    EXPECT_NE(csv.find("1,spec,window:2,full,\n"), std::string::npos) << csv;
    const auto loss = csvLines(figureCsv(compareLossFigure(fx.a, other, 2)));
    ASSERT_EQ(loss.size(), 5u);
    EXPECT_EQ(loss[2].substr(0, 10), "1,2,1,-1,-");
    other.numTokens = 6;
    EXPECT_THROW(compareLayersFigure(fx.a, other, -1, 2), InputError);
}

TEST(ViewFigureFiles, EveryFigureIsWrittenAsPngSvgAndPdf) {
    char dir[] = "/tmp/spanscope-view-figures-XXXXXX";
    ASSERT_NE(::mkdtemp(dir), nullptr);
    Fixture fx;
    ViewSelection s;
    s.tint = TokenTint::Attention, s.query = 3, s.layer = 1;
    AnalysisResult other = fx.a;
    other.pattern = masformerPattern(2, 2, LayerSpec::window(2));
    const std::string base = std::string(dir) + "/";
    writeFigure(base + "text", fx.figure(s));
    writeFigure(base + "stack", layerStackFigure(fx.a, s));
    writeFigure(base + "layers", compareLayersFigure(fx.a, other, -1, 2));
    writeFigure(base + "loss", compareLossFigure(fx.a, other, 2));
    const std::pair<const char*, std::string> magic[] = {{"png", "\x89PNG"}, {"svg", "<?xml"}, {"pdf", "%PDF"}};
    for (const char* name : {"text", "stack", "layers", "loss"})
        for (const auto& [ext, head] : magic) {
            std::ifstream in(base + name + "." + ext, std::ios::binary);
            std::string start(head.size(), '\0');
            in.read(start.data(), static_cast<std::streamsize>(start.size()));
            EXPECT_EQ(start, head) << name << "." << ext;
            std::remove((base + name + "." + ext).c_str());
        }
    ::rmdir(dir);
}

}  // namespace
}  // namespace spanscope
