// Model configuration, read from and written to a Hugging Face style config.json.
//
// The architecture is a decoder-only, pre-norm transformer with rotary positions (so documents
// longer than the training context can be studied), RMSNorm, a SwiGLU MLP and (by default) tied
// input/output embeddings. Weight names follow the Llama convention, so "model_type": "llama"
// checkpoints load too (grouped-query attention via num_key_value_heads). Plain value type.
#pragma once

#include <cstdint>
#include <string>

#include <nlohmann/json_fwd.hpp>

namespace spanscope {

struct ModelConfig {
    std::string modelType = "spanscope";
    int64_t vocabSize = 0;
    int64_t hiddenSize = 256;
    int64_t numLayers = 12;
    int64_t numHeads = 4;
    int64_t numKvHeads = 4;
    int64_t intermediateSize = 768;
    int64_t maxPositions = 2048;  // training context; longer documents still run (rotary)
    double ropeTheta = 10000.0;
    double normEps = 1e-5;
    bool tieEmbeddings = true;
    std::string dtype = "bfloat16";      // storage dtype of the weights
    std::string trainedPattern;          // pattern the model was trained with (text form), may be empty

    int64_t headDim() const { return hiddenSize / numHeads; }
    // Throws InputError("<where>: <field> ...") if a field is missing, of the wrong type or inconsistent.
    static ModelConfig fromJson(const nlohmann::json& j, const std::string& where);
    static ModelConfig load(const std::string& path);
    nlohmann::json toJson() const;
    void validate(const std::string& where) const;
    // Number of parameters of the model this config describes.
    int64_t parameterCount() const;
};

}  // namespace spanscope
