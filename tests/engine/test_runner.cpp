// The engine worker: newest request wins, stale work is dropped or cancelled, errors arrive as
// state, and the published snapshot is always complete.
#include <gtest/gtest.h>

#include <chrono>
#include <fstream>
#include <thread>

#include "engine/atomic_file.h"
#include "engine/bpe_trainer.h"
#include "engine/model.h"
#include "engine/runner.h"
#include "engine/tokenizer.h"
#include "tests/test_util.h"

using namespace spanscope;

namespace {

class RunnerTest : public ::testing::Test {
protected:
    void SetUp() override {
        std::string text = readFile("/usr/share/common-licenses/Apache-2.0");
        BpeTrainerOptions o;
        o.vocabSize = 400;
        auto tok = std::make_shared<Tokenizer>(trainBpe({text}, o));
        ModelConfig c;
        c.vocabSize = tok->vocabSize();
        c.hiddenSize = 32;
        c.numLayers = 4;
        c.numHeads = c.numKvHeads = 2;
        c.intermediateSize = 64;
        auto model = Model::createRandom(c, 3);
        model->setTokenizer(tok);
        model->save(m_tmp / "model");
        std::ofstream(m_tmp / "doc.txt") << text.substr(0, 6000);
        std::ofstream(m_tmp / "binary.bin", std::ios::binary) << std::string("abc\0\xff\xfe", 6);
    }
    // Waits until the worker has caught up with everything submitted.
    std::shared_ptr<const Snapshot> settle(Runner& r) {
        for (int i = 0; i < 6000; ++i) {
            auto s = r.latest();
            if (r.idle() && !s->busy) return s;
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
        ADD_FAILURE() << "worker did not settle in 60 s";
        return r.latest();
    }
    test::TempDir m_tmp{"spanscope-runner"};
};

AnalysisRequest requestFor(int boundary) {
    AnalysisRequest q;
    q.pattern = masformerPattern(4, boundary, LayerSpec::window(32));
    q.poolSize = 16;
    return q;
}

}  // namespace

TEST_F(RunnerTest, LoadsModelAndDocumentThenPublishesACompleteAnalysis) {
    Runner r;
    r.loadModel(m_tmp / "model");
    r.loadDocument(m_tmp / "doc.txt");
    uint64_t g = r.analyze(requestFor(2));
    auto s = settle(r);
    ASSERT_TRUE(s->error.empty()) << s->error;
    ASSERT_TRUE(s->model && s->document && s->analysis);
    EXPECT_EQ(s->analysisGeneration, g);
    EXPECT_EQ(s->analysis->layers.size(), 4u);
    EXPECT_EQ(s->analysis->numTokens, static_cast<int64_t>(s->document->tokens.size()));
    ASSERT_TRUE(s->baseline);  // all-full loss for Δloss
    EXPECT_EQ(s->baseline->pattern.boundary(), 4);
}

TEST_F(RunnerTest, BurstOfRequestsOnlyTheNewestIsPublishedAndStaleOnesAreDroppedOrCancelled) {
    Runner r;
    r.loadModel(m_tmp / "model");
    r.loadDocument(m_tmp / "doc.txt");
    uint64_t last = 0;
    for (int l = 0; l <= 4; ++l) last = r.analyze(requestFor(l % 5));  // a drag across the boundary
    last = r.analyze(requestFor(1));
    auto s = settle(r);
    ASSERT_TRUE(s->analysis) << s->error;
    EXPECT_EQ(s->analysisGeneration, last);
    EXPECT_EQ(s->lastRequest, requestFor(1));
    EXPECT_EQ(s->analysis->pattern.boundary(), 1);
    auto c = r.counters();
    EXPECT_EQ(c.analysesFinished, 1u) << "stale requests must not run to completion";
    EXPECT_LE(c.analysesStarted, 2u);
}

TEST_F(RunnerTest, CancelStopsTheRunningAnalysisAndKeepsThePreviousResult) {
    Runner r;
    r.loadModel(m_tmp / "model");
    r.loadDocument(m_tmp / "doc.txt");
    uint64_t first = r.analyze(requestFor(4));
    settle(r);
    r.analyze(requestFor(0));
    r.cancel();
    auto s = settle(r);
    EXPECT_EQ(s->analysisGeneration, first);
    EXPECT_FALSE(s->busy);
    auto c = r.counters();
    EXPECT_EQ(c.analysesFinished, 1u);
}

TEST_F(RunnerTest, BadFilesBecomeErrorStateAndTheWorkerKeepsGoing) {
    Runner r;
    r.loadModel(m_tmp / "no-such-model");
    auto s = settle(r);
    EXPECT_NE(s->error.find("model folder not found"), std::string::npos) << s->error;
    EXPECT_FALSE(s->model);
    r.loadModel(m_tmp / "model");
    r.loadDocument(m_tmp / "binary.bin");
    s = settle(r);
    EXPECT_NE(s->error.find("not valid UTF-8"), std::string::npos) << s->error;
    EXPECT_TRUE(s->model);
    EXPECT_FALSE(s->document);
    r.loadDocument(m_tmp / "doc.txt");
    r.analyze(requestFor(3));
    s = settle(r);
    EXPECT_TRUE(s->error.empty()) << s->error;
    EXPECT_TRUE(s->analysis);
}
