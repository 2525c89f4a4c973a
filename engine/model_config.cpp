#include "engine/model_config.h"

#include <nlohmann/json.hpp>

#include "engine/atomic_file.h"
#include "engine/errors.h"

namespace spanscope {
namespace {

int64_t requireInt(const nlohmann::json& j, const char* key, const std::string& where) {
    if (!j.contains(key)) throw InputError(where + ": missing field \"" + key + "\"");
    if (!j[key].is_number_integer()) throw InputError(where + ": field \"" + key + "\" must be an integer");
    return j[key].get<int64_t>();
}

template <typename T>
T optional(const nlohmann::json& j, const char* key, T fallback, const std::string& where) {
    if (!j.contains(key) || j[key].is_null()) return fallback;
    try {
        return j[key].get<T>();
    } catch (const nlohmann::json::exception&) {
        throw InputError(where + ": field \"" + key + "\" has the wrong type");
    }
}

}  // namespace

ModelConfig ModelConfig::fromJson(const nlohmann::json& j, const std::string& where) {
    if (!j.is_object()) throw InputError(where + ": expected a JSON object");
    ModelConfig c;
    c.modelType = optional<std::string>(j, "model_type", "spanscope", where);
    if (c.modelType != "spanscope" && c.modelType != "llama")
        throw InputError(where + ": model_type \"" + c.modelType + "\" is not supported (spanscope, llama)");
    c.vocabSize = requireInt(j, "vocab_size", where);
    c.hiddenSize = requireInt(j, "hidden_size", where);
    c.numLayers = requireInt(j, "num_hidden_layers", where);
    c.numHeads = requireInt(j, "num_attention_heads", where);
    c.numKvHeads = optional<int64_t>(j, "num_key_value_heads", c.numHeads, where);
    c.intermediateSize = requireInt(j, "intermediate_size", where);
    c.maxPositions = optional<int64_t>(j, "max_position_embeddings", 2048, where);
    c.ropeTheta = optional<double>(j, "rope_theta", 10000.0, where);
    c.normEps = optional<double>(j, "rms_norm_eps", 1e-5, where);
    c.tieEmbeddings = optional<bool>(j, "tie_word_embeddings", c.modelType == "spanscope", where);
    c.dtype = optional<std::string>(j, "torch_dtype", "bfloat16", where);
    if (j.contains("attention_pattern")) {
        const auto& p = j["attention_pattern"];
        c.trainedPattern = p.is_string() ? p.get<std::string>() : p.dump();
    }
    if (j.contains("hidden_act") && j["hidden_act"] != "silu")
        throw InputError(where + ": hidden_act " + j["hidden_act"].dump() + " is not supported (silu)");
    c.validate(where);
    return c;
}

void ModelConfig::validate(const std::string& where) const {
    auto fail = [&](const std::string& what) { throw InputError(where + ": " + what); };
    if (vocabSize <= 0 || vocabSize > 1'000'000) fail("vocab_size must be in 1..1000000");
    if (hiddenSize <= 0 || hiddenSize > 65536) fail("hidden_size must be in 1..65536");
    if (numLayers <= 0 || numLayers > 1024) fail("num_hidden_layers must be in 1..1024");
    if (numHeads <= 0 || hiddenSize % numHeads != 0) fail("hidden_size must be a multiple of num_attention_heads");
    if (headDim() % 2 != 0) fail("head dimension must be even (rotary positions)");
    if (numKvHeads <= 0 || numHeads % numKvHeads != 0) fail("num_attention_heads must be a multiple of num_key_value_heads");
    if (intermediateSize <= 0) fail("intermediate_size must be positive");
    if (maxPositions <= 0) fail("max_position_embeddings must be positive");
    if (!(ropeTheta > 0)) fail("rope_theta must be positive");
    if (!(normEps > 0)) fail("rms_norm_eps must be positive");
    if (dtype != "bfloat16" && dtype != "float32" && dtype != "float16")
        fail("torch_dtype \"" + dtype + "\" is not supported (bfloat16, float16, float32)");
}

ModelConfig ModelConfig::load(const std::string& path) {
    std::string text = readFile(path, 16 << 20);
    nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
    if (j.is_discarded()) throw InputError(path + ": not valid JSON");
    return fromJson(j, path);
}

nlohmann::json ModelConfig::toJson() const {
    nlohmann::json j = {
        {"model_type", modelType},       {"architectures", {"LlamaForCausalLM"}},
        {"vocab_size", vocabSize},       {"hidden_size", hiddenSize},
        {"num_hidden_layers", numLayers}, {"num_attention_heads", numHeads},
        {"num_key_value_heads", numKvHeads}, {"intermediate_size", intermediateSize},
        {"max_position_embeddings", maxPositions}, {"rope_theta", ropeTheta},
        {"rms_norm_eps", normEps},       {"tie_word_embeddings", tieEmbeddings},
        {"hidden_act", "silu"},          {"torch_dtype", dtype},
    };
    if (!trainedPattern.empty()) j["attention_pattern"] = trainedPattern;
    return j;
}

int64_t ModelConfig::parameterCount() const {
    const int64_t d = hiddenSize, kv = numKvHeads * headDim();
    const int64_t perLayer = d * d * 2 + d * kv * 2 + 3 * d * intermediateSize + 2 * d;
    return vocabSize * d * (tieEmbeddings ? 1 : 2) + numLayers * perLayer + d;
}

}  // namespace spanscope
