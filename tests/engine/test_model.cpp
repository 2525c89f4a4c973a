#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include <cstdlib>
#include <sys/stat.h>
#include <unistd.h>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>

#include "engine/errors.h"
#include "engine/model.h"
#include "engine/model_impl.h"
#include "tests/test_util.h"

using namespace spanscope;

namespace {

ModelConfig tinyConfig(const std::string& dtype = "float32") {
    ModelConfig c;
    c.vocabSize = 300;
    c.hiddenSize = 48;
    c.numLayers = 3;
    c.numHeads = 4;
    c.numKvHeads = 2;
    c.intermediateSize = 80;
    c.dtype = dtype;
    return c;
}

std::vector<int32_t> randomTokens(int64_t n, int32_t vocab, uint32_t seed) {
    std::mt19937 rng(seed);
    std::vector<int32_t> t(static_cast<size_t>(n));
    for (auto& x : t) x = static_cast<int32_t>(rng() % static_cast<uint32_t>(vocab));
    return t;
}

at::Tensor logitsOf(const Model& m, const std::vector<int32_t>& tokens, const std::string& pattern) {
    at::InferenceMode guard;
    auto p = parsePattern(pattern, static_cast<int>(m.config().numLayers));
    auto x = runLayers(m.impl(), embedTokens(m.impl(), tokens), 0, static_cast<int>(m.config().numLayers),
                       patternAttention(p, m.impl()));
    return logits(m.impl(), x);
}

class ModelFolderTest : public ::testing::Test {
protected:
    std::string loadError(const std::string& dir) {
        try {
            Model::load(dir);
        } catch (const InputError& e) {
            return e.what();
        }
        return "";
    }
    test::TempDir m_tmp{"spanscope-model"};
    std::string m_dir = m_tmp.path();
};

}  // namespace

TEST_F(ModelFolderTest, RandomModelSavedAndReloadedGivesIdenticalLogitsFp32AndBf16) {
    for (std::string dtype : {"float32", "bfloat16"}) {
        auto model = Model::createRandom(tinyConfig(dtype), 42);
        std::string dir = m_dir + "/" + dtype;
        model->save(dir);
        auto loaded = Model::load(dir);
        EXPECT_EQ(loaded->config().toJson(), model->config().toJson());
        auto tokens = randomTokens(57, 300, 3);
        auto a = logitsOf(*model, tokens, "full,window:8,block:16");
        auto b = logitsOf(*loaded, tokens, "full,window:8,block:16");
        EXPECT_TRUE(at::equal(a, b)) << dtype << " max diff " << (a - b).abs().max().item<double>();
    }
}

TEST_F(ModelFolderTest, SameSeedSameWeightsDifferentSeedDifferentWeights) {
    auto a = Model::createRandom(tinyConfig(), 1), b = Model::createRandom(tinyConfig(), 1), c = Model::createRandom(tinyConfig(), 2);
    EXPECT_TRUE(at::equal(a->impl().embed, b->impl().embed));
    EXPECT_FALSE(at::equal(a->impl().embed, c->impl().embed));
}

TEST_F(ModelFolderTest, CausalityLaterTokensDoNotChangeEarlierLogits) {
    auto model = Model::createRandom(tinyConfig(), 5);
    auto tokens = randomTokens(40, 300, 9);
    auto full = logitsOf(*model, tokens, "full,window:8,block:16");
    tokens.resize(25);
    auto prefix = logitsOf(*model, tokens, "full,window:8,block:16");
    EXPECT_TRUE(at::allclose(full.slice(1, 0, 25), prefix, 1e-4, 1e-5));
}

TEST_F(ModelFolderTest, WindowCoveringTheWholeDocumentEqualsFullAttention) {
    auto model = Model::createRandom(tinyConfig(), 6);
    auto tokens = randomTokens(33, 300, 1);
    EXPECT_TRUE(at::allclose(logitsOf(*model, tokens, "full"), logitsOf(*model, tokens, "window:33"), 1e-5, 1e-6));
    EXPECT_FALSE(at::allclose(logitsOf(*model, tokens, "full"), logitsOf(*model, tokens, "window:4"), 1e-5, 1e-6));
}

TEST_F(ModelFolderTest, BrokenModelFoldersEachGetAClearMessage) {
    auto model = Model::createRandom(tinyConfig(), 7);
    model->save(m_dir + "/ok");
    EXPECT_NE(loadError(m_dir + "/missing").find("model folder not found"), std::string::npos);

    test::copyFolder(m_dir + "/ok", m_dir + "/noconfig");
    ::unlink((m_dir + "/noconfig/config.json").c_str());
    EXPECT_NE(loadError(m_dir + "/noconfig").find("config.json"), std::string::npos);

    test::copyFolder(m_dir + "/ok", m_dir + "/truncated");
    struct stat st {};
    ASSERT_EQ(::stat((m_dir + "/ok/model.safetensors").c_str(), &st), 0);
    ASSERT_EQ(::truncate((m_dir + "/truncated/model.safetensors").c_str(), st.st_size - 100), 0);
    EXPECT_NE(loadError(m_dir + "/truncated").find("model.safetensors"), std::string::npos);

    test::copyFolder(m_dir + "/ok", m_dir + "/shape");
    auto cfg = nlohmann::json::parse(std::ifstream(m_dir + "/ok/config.json"));
    cfg["intermediate_size"] = 96;
    std::ofstream(m_dir + "/shape/config.json") << cfg.dump();
    std::string e = loadError(m_dir + "/shape");
    EXPECT_NE(e.find("gate_proj"), std::string::npos) << e;
    EXPECT_NE(e.find("[96, 48]"), std::string::npos) << e;

    test::copyFolder(m_dir + "/ok", m_dir + "/badjson");
    std::ofstream(m_dir + "/badjson/config.json") << "{\"vocab_size\": 300,";
    EXPECT_NE(loadError(m_dir + "/badjson").find("not valid JSON"), std::string::npos);

    test::copyFolder(m_dir + "/ok", m_dir + "/badfield");
    cfg = nlohmann::json::parse(std::ifstream(m_dir + "/ok/config.json"));
    cfg["num_attention_heads"] = 5;
    std::ofstream(m_dir + "/badfield/config.json") << cfg.dump();
    EXPECT_NE(loadError(m_dir + "/badfield").find("multiple of num_attention_heads"), std::string::npos);
}

TEST(ModelDevice, UnknownDeviceAndMissingGpuAreInputErrors) {
    EXPECT_THROW(resolveDevice("tpu"), InputError);
    if (!cudaAvailable()) {
        EXPECT_THROW(resolveDevice("cuda"), InputError);
    }
    EXPECT_EQ(resolveDevice("cpu"), "cpu");
}
