#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <random>

#include "engine/errors.h"
#include "engine/pattern.h"

namespace spanscope {
void PrintTo(const LayerSpec& s, std::ostream* os) { *os << s.text(); }
}  // namespace spanscope

using namespace spanscope;

namespace {

// Brute-force definition of each mask, written independently of LayerSpec.
bool bruteAllows(const LayerSpec& s, int64_t i, int64_t j) {
    if (j > i || j < 0) return false;
    switch (s.kind) {
        case AttentionKind::Full: return true;
        case AttentionKind::Window:
        case AttentionKind::SparseK: return i - j < s.span;
        case AttentionKind::Block:
            return j / s.span == i / s.span || (s.prevBlock && j / s.span + 1 == i / s.span);
    }
    return false;
}

std::string expectInputError(const std::function<void()>& f) {
    try {
        f();
    } catch (const InputError& e) {
        return e.what();
    }
    ADD_FAILURE() << "expected InputError";
    return "";
}

}  // namespace

class PatternMaskTest : public ::testing::TestWithParam<LayerSpec> {};

TEST_P(PatternMaskTest, AllowsFirstKeyAndPairsMatchBruteForceUpTo300Tokens) {
    const LayerSpec s = GetParam();
    int64_t pairs = 0;
    const int64_t n = 300;
    for (int64_t i = 0; i < n; ++i) {
        int64_t first = -1, count = 0;
        for (int64_t j = 0; j < n; ++j) {
            bool want = bruteAllows(s, i, j);
            ASSERT_EQ(s.allows(i, j), want) << s.text() << " i=" << i << " j=" << j;
            if (want) {
                if (first < 0) first = j;
                ++count;
            }
        }
        ASSERT_EQ(s.firstKey(i), first) << s.text() << " i=" << i;
        ASSERT_EQ(s.keysFor(i), count) << s.text() << " i=" << i;
        pairs += count;
        if (s.kind != AttentionKind::SparseK) {
            int64_t partial = s.attendedPairs(i + 1);
            ASSERT_EQ(partial, pairs) << s.text() << " n=" << i + 1;
        }
    }
}

INSTANTIATE_TEST_SUITE_P(Kinds, PatternMaskTest,
                         ::testing::Values(LayerSpec::full(), LayerSpec::window(1), LayerSpec::window(17),
                                           LayerSpec::window(512), LayerSpec::block(1), LayerSpec::block(13),
                                           LayerSpec::block(64, true), LayerSpec::block(7, true)),
                         [](const auto& info) {
                             std::string t = info.param.text();
                             for (auto& ch : t)
                                 if (!isalnum(static_cast<unsigned char>(ch))) ch = '_';
                             return t;
                         });

TEST(Pattern, TextFormWithCountsParsesToTheRightLayers) {
    LayerPattern p = parsePattern("full*4, window:512*6,block:1024+prev*2", 12);
    ASSERT_EQ(p.layers.size(), 12u);
    EXPECT_EQ(p.boundary(), 4);
    EXPECT_EQ(p.layers[4], LayerSpec::window(512));
    EXPECT_EQ(p.layers[11], LayerSpec::block(1024, true));
    EXPECT_EQ(p.text(), "full*4,window:512*6,block:1024+prev*2");
    EXPECT_EQ(parsePattern(p.text(), 12), p);
}

TEST(Pattern, SingleItemWithoutCountFillsEveryLayer) {
    LayerPattern p = parsePattern("window:64", 5);
    ASSERT_EQ(p.layers.size(), 5u);
    EXPECT_EQ(p.boundary(), 0);
    EXPECT_EQ(parsePattern("full", 3).boundary(), 3);
}

TEST(Pattern, MasformerShorthandPutsFullLayersAtTheBottom) {
    LayerPattern p = parsePattern("masformer:4,block:1024", 24);
    EXPECT_EQ(p.boundary(), 4);
    EXPECT_EQ(p.sparseSpec(), LayerSpec::block(1024));
    EXPECT_EQ(p.text(), "full*4,block:1024*20");
    EXPECT_EQ(parsePattern("sparsek:64/256", 2).layers[0], LayerSpec::sparseK(64, 256));
}

TEST(Pattern, JsonListAndBoundaryObjectFormsRoundTrip) {
    LayerPattern p = parsePattern("full*2,window:128*2,block:32+prev,sparsek:8/16", 6);
    EXPECT_EQ(patternFromJson(p.toJson(), 6), p);
    auto obj = nlohmann::json::parse(R"({"boundary": 2, "sparse": {"kind": "block", "span": 256, "prev_block": true}})");
    LayerPattern q = patternFromJson(obj, 8);
    EXPECT_EQ(q.boundary(), 2);
    EXPECT_EQ(q.layers[7], LayerSpec::block(256, true));
}

TEST(Pattern, InvalidPatternsNameTheOffendingPart) {
    EXPECT_NE(expectInputError([] { parsePattern("full*4,windw:512*8", 12); }).find("'windw:512'"), std::string::npos);
    EXPECT_NE(expectInputError([] { parsePattern("full*4,window:-5*8", 12); }).find("window span"), std::string::npos);
    EXPECT_NE(expectInputError([] { parsePattern("full*4,window:512*7", 12); }).find("has 11 layers"), std::string::npos);
    EXPECT_NE(expectInputError([] { parsePattern("full*0", 12); }).find("repeat count"), std::string::npos);
    EXPECT_NE(expectInputError([] { parsePattern("", 12); }).find("empty"), std::string::npos);
    EXPECT_NE(expectInputError([] { parsePattern("full,,window:4", 3); }).find("empty item"), std::string::npos);
    EXPECT_NE(expectInputError([] { parsePattern("masformer:13,window:512", 12); }).find("boundary 13"), std::string::npos);
    EXPECT_NE(expectInputError([] { parsePattern("block", 2); }).find("needs a size"), std::string::npos);
    EXPECT_NE(expectInputError([] { parsePattern("sparsek:5", 2); }).find("k/w"), std::string::npos);
    EXPECT_NE(expectInputError([] { patternFromJson(nlohmann::json::parse(R"([{"kind":"window"}])"), 1); })
                  .find("pattern layer 0"),
              std::string::npos);
}
