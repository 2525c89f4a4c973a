// A decoder-only mixed-span transformer, loaded from a model folder or created at random.
//
// The folder holds config.json (ModelConfig), model.safetensors (or shards + index) and
// tokenizer.json. Weights live on one device ("cpu" or "cuda"); on the CPU the model computes in
// fp32 (exact analysis), on CUDA in bf16. The public API hides LibTorch (pimpl) so front ends
// and views never include it. A loaded Model is immutable: concurrent const use is safe, but
// ATen calls should stay on the thread that owns the device (the worker).
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "engine/model_config.h"

namespace spanscope {

class Tokenizer;
struct ModelImpl;

bool cudaAvailable();
// "cpu", "cuda" or "auto" (cuda when available). Throws InputError for anything else or for
// "cuda" on a machine without a usable GPU.
std::string resolveDevice(const std::string& requested);

class Model {
public:
    // Throws InputError naming the file at fault (missing, truncated, wrong shapes, ...).
    static std::shared_ptr<Model> load(const std::string& dir, const std::string& device = "cpu");
    static std::shared_ptr<Model> createRandom(const ModelConfig& config, uint64_t seed,
                                               const std::string& device = "cpu");
    // Wraps tensors built by the engine itself (training); the impl must be complete.
    static std::shared_ptr<Model> fromImpl(std::unique_ptr<ModelImpl> impl);
    ~Model();

    // Writes config.json, model.safetensors (weights in config().dtype) and, when the model has
    // one, tokenizer.json into dir (created if missing); every file atomically.
    void save(const std::string& dir) const;

    const ModelConfig& config() const;
    const std::string& directory() const;  // empty for a model created in memory
    std::string device() const;
    // The tokenizer from the model folder; throws InputError if the folder had none.
    const Tokenizer& tokenizer() const;
    bool hasTokenizer() const;
    void setTokenizer(std::shared_ptr<const Tokenizer> tokenizer);

    ModelImpl& impl() const { return *m_impl; }

private:
    explicit Model(std::unique_ptr<ModelImpl> impl);
    std::unique_ptr<ModelImpl> m_impl;
};

}  // namespace spanscope
