// Model folders: loading and saving weights (safetensors), random initialisation, devices.
#include <ATen/ATen.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "engine/atomic_file.h"
#include "engine/errors.h"
#include "engine/model_impl.h"
#include "engine/pattern.h"
#include "engine/safetensors.h"
#include "engine/tokenizer.h"

namespace spanscope {
namespace fs = std::filesystem;

namespace {

// A SparseK layer's recency slope (per layer: "model.layers.N." + this). Optional when loading:
// models saved before the scorer had it load with β = 0.
const std::string kSparseKPosition = "self_attn.sparsek_score.position";

bool isSparseKPosition(const std::string& name) {
    return name.size() >= kSparseKPosition.size() &&
           name.compare(name.size() - kSparseKPosition.size(), kSparseKPosition.size(), kSparseKPosition) == 0;
}

at::ScalarType storageType(const std::string& dtype) {
    if (dtype == "float32") return at::kFloat;
    if (dtype == "float16") return at::kHalf;
    return at::kBFloat16;
}

std::optional<at::ScalarType> scalarTypeOf(DType d) {
    switch (d) {
        case DType::F32: return at::kFloat;
        case DType::F16: return at::kHalf;
        case DType::BF16: return at::kBFloat16;
        case DType::F64: return at::kDouble;
        default: return std::nullopt;
    }
}

DType dtypeOf(at::ScalarType t) {
    if (t == at::kFloat) return DType::F32;
    if (t == at::kHalf) return DType::F16;
    return DType::BF16;
}

std::string shapeText(at::IntArrayRef s) {
    std::string out = "[";
    for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
    return out + "]";
}

// Allocates every parameter (uninitialised) with the shapes the config implies.
std::unique_ptr<ModelImpl> allocate(const ModelConfig& c, const std::string& device) {
    auto m = std::make_unique<ModelImpl>();
    m->config = c;
    m->device = at::Device(device);
    m->computeType = m->device.is_cuda() ? at::kBFloat16 : at::kFloat;
    auto o = at::TensorOptions().dtype(m->computeType).device(m->device);
    const int64_t C = c.hiddenSize, HD = c.numHeads * c.headDim(), KD = c.numKvHeads * c.headDim();
    m->embed = at::empty({c.vocabSize, C}, o);
    m->finalNorm = at::empty({C}, o);
    if (!c.tieEmbeddings) m->lmHead = at::empty({c.vocabSize, C}, o);
    m->layers.resize(static_cast<size_t>(c.numLayers));
    for (auto& w : m->layers) {
        w.inputNorm = at::empty({C}, o);
        w.wq = at::empty({HD, C}, o);
        w.wk = at::empty({KD, C}, o);
        w.wv = at::empty({KD, C}, o);
        w.wo = at::empty({C, HD}, o);
        w.postNorm = at::empty({C}, o);
        w.wGate = at::empty({c.intermediateSize, C}, o);
        w.wUp = at::empty({c.intermediateSize, C}, o);
        w.wDown = at::empty({C, c.intermediateSize}, o);
    }
    // SparseK layers of the pattern the model was trained with carry a scoring network.
    if (!c.trainedPattern.empty()) {
        const LayerPattern p = parsePattern(c.trainedPattern, static_cast<int>(c.numLayers));
        for (size_t l = 0; l < p.layers.size(); ++l)
            if (p.layers[l].kind == AttentionKind::SparseK) {
                m->layers[l].sparsekScore = at::empty({c.numHeads, c.headDim()}, o);
                m->layers[l].sparsekPosition = at::empty({c.numHeads}, o);
            }
    }
    return m;
}

}  // namespace

std::vector<std::pair<std::string, at::Tensor*>> ModelImpl::namedParameters() {
    std::vector<std::pair<std::string, at::Tensor*>> out{{"model.embed_tokens.weight", &embed}};
    for (size_t i = 0; i < layers.size(); ++i) {
        const std::string p = "model.layers." + std::to_string(i) + ".";
        auto& w = layers[i];
        out.insert(out.end(), {{p + "input_layernorm.weight", &w.inputNorm},
                               {p + "self_attn.q_proj.weight", &w.wq},
                               {p + "self_attn.k_proj.weight", &w.wk},
                               {p + "self_attn.v_proj.weight", &w.wv},
                               {p + "self_attn.o_proj.weight", &w.wo},
                               {p + "post_attention_layernorm.weight", &w.postNorm},
                               {p + "mlp.gate_proj.weight", &w.wGate},
                               {p + "mlp.up_proj.weight", &w.wUp},
                               {p + "mlp.down_proj.weight", &w.wDown}});
        if (w.sparsekScore.defined()) out.emplace_back(p + "self_attn.sparsek_score.weight", &w.sparsekScore);
        if (w.sparsekPosition.defined()) out.emplace_back(p + kSparseKPosition, &w.sparsekPosition);
    }
    out.emplace_back("model.norm.weight", &finalNorm);
    if (lmHead.defined()) out.emplace_back("lm_head.weight", &lmHead);
    return out;
}

bool cudaAvailable() { return at::hasCUDA(); }

std::string resolveDevice(const std::string& requested) {
    if (requested == "cpu") return "cpu";
    if (requested == "auto") return cudaAvailable() ? "cuda" : "cpu";
    if (requested == "cuda") {
        if (!cudaAvailable()) throw InputError("device 'cuda' requested but no CUDA GPU is available (use --device cpu)");
        return "cuda";
    }
    throw InputError("unknown device '" + requested + "' (use cpu, cuda or auto)");
}

Model::Model(std::unique_ptr<ModelImpl> impl) : m_impl(std::move(impl)) {}
Model::~Model() = default;

std::shared_ptr<Model> Model::fromImpl(std::unique_ptr<ModelImpl> impl) {
    return std::shared_ptr<Model>(new Model(std::move(impl)));
}

const ModelConfig& Model::config() const { return m_impl->config; }
const std::string& Model::directory() const { return m_impl->directory; }
std::string Model::device() const { return m_impl->device.str(); }
bool Model::hasTokenizer() const { return m_impl->tokenizer != nullptr; }
void Model::setTokenizer(std::shared_ptr<const Tokenizer> tokenizer) { m_impl->tokenizer = std::move(tokenizer); }

const Tokenizer& Model::tokenizer() const {
    if (!m_impl->tokenizer)
        throw InputError((m_impl->directory.empty() ? std::string("model") : m_impl->directory) + ": no tokenizer.json");
    return *m_impl->tokenizer;
}

std::shared_ptr<Model> Model::createRandom(const ModelConfig& config, uint64_t seed, const std::string& device) {
    config.validate("model config");
    auto impl = allocate(config, resolveDevice(device));
    auto gen = at::detail::createCPUGenerator(seed);
    const double std = 0.02, residualStd = 0.02 / std::sqrt(2.0 * static_cast<double>(config.numLayers));
    for (auto& [name, t] : impl->namedParameters()) {
        auto cpu = at::empty(t->sizes(), at::kFloat);
        if (name.find("norm") != std::string::npos) cpu.fill_(1.0);
        else {
            bool residual = name.find("o_proj") != std::string::npos || name.find("down_proj") != std::string::npos;
            cpu.normal_(0.0, residual ? residualStd : std, gen);
        }
        // Round through the storage dtype so a saved and reloaded model is bit-identical.
        t->copy_(cpu.to(storageType(config.dtype)));
    }
    return std::shared_ptr<Model>(new Model(std::move(impl)));
}

std::shared_ptr<Model> Model::load(const std::string& dir, const std::string& device) {
    std::error_code ec;
    if (!fs::is_directory(dir, ec)) throw InputError(dir + ": model folder not found");
    ModelConfig config = ModelConfig::load((fs::path(dir) / "config.json").string());
    auto impl = allocate(config, resolveDevice(device));
    impl->directory = dir;
    SafetensorsShards shards = SafetensorsShards::open(dir);
    for (auto& [name, t] : impl->namedParameters()) {
        const SafetensorsFile* file = nullptr;
        const TensorInfo* info = shards.find(name, &file);
        if (!info && isSparseKPosition(name)) {  // saved before the scorer had a recency slope: β = 0
            t->zero_();
            continue;
        }
        if (!info) throw InputError(dir + ": weights have no tensor '" + name + "'");
        auto type = scalarTypeOf(info->dtype);
        if (!type)
            throw InputError(file->path() + ": tensor '" + name + "' has dtype " + dtypeName(info->dtype) +
                             " (expected F32, F16 or BF16)");
        if (at::IntArrayRef(info->shape) != t->sizes())
            throw InputError(file->path() + ": tensor '" + name + "' has shape " + shapeText(info->shape) +
                             " but config.json implies " + shapeText(t->sizes()));
        // The file gives no alignment guarantee: copy the bytes into an aligned host tensor first.
        auto src = at::empty(info->shape, at::TensorOptions().dtype(*type));
        std::memcpy(src.data_ptr(), file->data(*info), static_cast<size_t>(info->end - info->begin));
        t->copy_(src);
    }
    auto tokPath = fs::path(dir) / "tokenizer.json";
    if (fs::exists(tokPath, ec)) {
        auto tok = std::make_shared<Tokenizer>(Tokenizer::load(tokPath.string()));
        if (tok->vocabSize() > config.vocabSize)
            throw InputError(tokPath.string() + ": tokenizer has " + std::to_string(tok->vocabSize()) +
                             " tokens but config.json vocab_size is " + std::to_string(config.vocabSize));
        impl->tokenizer = std::move(tok);
    }
    return std::shared_ptr<Model>(new Model(std::move(impl)));
}

void Model::save(const std::string& dir) const {
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (ec) throw InputError(dir + ": cannot create folder (" + ec.message() + ")");
    const at::ScalarType st = storageType(m_impl->config.dtype);
    std::vector<at::Tensor> keep;
    std::vector<TensorToWrite> out;
    for (auto& [name, t] : m_impl->namedParameters()) {
        keep.push_back(t->detach().to(at::kCPU, st).contiguous());
        const at::Tensor& c = keep.back();
        out.push_back({name, dtypeOf(st), c.sizes().vec(), c.data_ptr(), static_cast<size_t>(c.nbytes())});
    }
    writeSafetensors((fs::path(dir) / "model.safetensors").string(), out, {{"format", "pt"}});
    writeFileAtomic((fs::path(dir) / "config.json").string(), m_impl->config.toJson().dump(2) + "\n");
    if (m_impl->tokenizer) m_impl->tokenizer->save((fs::path(dir) / "tokenizer.json").string());
}

}  // namespace spanscope
