// Training loop: data windows, masked attention with autograd, AdamW, checkpoints (train.h).
#include "engine/train.h"

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <random>

#include "engine/analysis_json.h"
#include "engine/atomic_file.h"
#include "engine/errors.h"
#include "engine/model_impl.h"
#include "engine/safetensors.h"
#include "engine/span_autograd.h"
#include "kernels/attention_cpu.h"
#include "engine/token_data.h"
#include "engine/tokenizer.h"

namespace spanscope {
namespace fs = std::filesystem;
namespace {

using Clock = std::chrono::steady_clock;
constexpr int kStateVersion = 1;
constexpr int64_t kMaxSparseKContext = 4096;  // dense SparseK reference (CPU): (B, H, T, T) tensors

std::string join(const std::string& dir, const std::string& name) { return (fs::path(dir) / name).string(); }
bool exists(const std::string& p) { return ::access(p.c_str(), F_OK) == 0; }

// Removes a folder that holds only plain files (checkpoint folders); no recursion needed.
void removeFlatFolder(const std::string& dir) {
    std::error_code ec;
    if (!fs::is_directory(dir, ec)) return;
    std::vector<std::string> files;
    for (const auto& e : fs::directory_iterator(dir, ec)) files.push_back(e.path().string());
    for (const auto& f : files) ::unlink(f.c_str());
    ::rmdir(dir.c_str());
}

// ---- inputs --------------------------------------------------------------------------------

struct Inputs {
    TokenData train, val;
    std::shared_ptr<Model> model;  // the starting point (fresh or loaded), on the training device
    LayerPattern pattern;
    std::string device;
};

ModelConfig freshConfig(const TrainOptions& o, int64_t vocab) {
    ModelConfig c;
    c.vocabSize = vocab;
    c.numLayers = o.layers;
    c.hiddenSize = o.hidden;
    c.numHeads = o.heads;
    c.numKvHeads = o.heads;
    c.intermediateSize = o.intermediate;
    c.maxPositions = o.context;
    c.dtype = o.dtype;
    return c;
}

void checkOptions(const TrainOptions& o) {
    auto positive = [](int64_t v, const char* name) {
        if (v <= 0) throw InputError(std::string("--") + name + " must be positive (got " + std::to_string(v) + ")");
    };
    positive(o.context, "context");
    positive(o.batch, "batch");
    positive(o.steps, "steps");
    positive(o.evalEvery, "eval-every");
    positive(o.evalBatches, "eval-batches");
    positive(o.checkpointEvery, "checkpoint-every");
    positive(o.logEvery, "log-every");
    if (o.context < 2) throw InputError("--context must be at least 2");
    if (!(o.lr > 0) || !(o.minLrRatio >= 0 && o.minLrRatio <= 1))
        throw InputError("--lr must be positive and --min-lr-ratio in [0, 1]");
    if (o.warmup < 0 || o.warmup > o.steps) throw InputError("--warmup must be in 0..steps");
    if (!(o.clip > 0) || !(o.weightDecay >= 0) || !(o.beta1 >= 0 && o.beta1 < 1) || !(o.beta2 >= 0 && o.beta2 < 1))
        throw InputError("--clip must be positive, --weight-decay non-negative, betas in [0, 1)");
    if (o.out.empty()) throw InputError("--out is required");
    if (o.init.empty() && o.tokenizer.empty())
        throw InputError("give --init MODEL_DIR to continue training a model, or --tokenizer FILE for a fresh one");
    if (!(o.sparsekRecency >= 0 && o.sparsekRecency <= 64))
        throw InputError("--sparsek-recency must be in [0, 64] (score per position)");
    if (o.dtype != "bfloat16" && o.dtype != "float16" && o.dtype != "float32")
        throw InputError("--dtype must be bfloat16, float16 or float32");
}

Inputs loadInputs(const TrainOptions& o) {
    checkOptions(o);
    Inputs in;
    in.device = resolveDevice(o.device);
    in.train = TokenData::load(o.trainData);
    in.val = TokenData::load(o.valData);
    if (in.val.vocabSize != in.train.vocabSize || in.val.endOfText != in.train.endOfText)
        throw InputError(o.valData + ": made with a different tokenizer than " + o.trainData + " (vocabulary " +
                         std::to_string(in.val.vocabSize) + " vs " + std::to_string(in.train.vocabSize) + ")");
    for (const TokenData* d : {&in.train, &in.val})
        if (static_cast<int64_t>(d->ids.size()) < o.context + 1)
            throw InputError(d->path + ": holds " + std::to_string(d->ids.size()) + " tokens, fewer than one window of " +
                             std::to_string(o.context + 1) + " (--context + 1)");
    std::shared_ptr<const Tokenizer> tok;
    if (!o.init.empty()) {
        in.model = Model::load(o.init, in.device);
        if (!o.tokenizer.empty()) throw InputError("--tokenizer conflicts with --init (the model folder has its own)");
        tok = std::make_shared<Tokenizer>(in.model->tokenizer());
    } else {
        tok = std::make_shared<Tokenizer>(Tokenizer::load(o.tokenizer));
        ModelConfig c = freshConfig(o, tok->vocabSize());
        c.validate("training options");
        in.model = Model::createRandom(c, o.seed, in.device);
        in.model->setTokenizer(tok);
    }
    const std::string tokSource = o.init.empty() ? o.tokenizer : join(o.init, "tokenizer.json");
    if (tok->vocabSize() != in.train.vocabSize)
        throw InputError(o.trainData + ": made with a tokenizer of " + std::to_string(in.train.vocabSize) +
                         " tokens, but " + tokSource + " has " + std::to_string(tok->vocabSize()));
    auto eot = tok->tokenId("<|endoftext|>");
    if (!eot || *eot != in.train.endOfText)
        throw InputError(o.trainData + ": its end-of-text id differs from " + tokSource + "'s (another tokenizer?)");
    const ModelConfig& c = in.model->config();
    const std::string patternText = !o.pattern.empty() ? o.pattern : !c.trainedPattern.empty() ? c.trainedPattern : "full";
    try {
        in.pattern = parsePattern(patternText, static_cast<int>(c.numLayers));
    } catch (const InputError& e) {
        const std::string what = e.what();
        throw InputError("--pattern: " + what +
                         (what.find("layers") == std::string::npos ? " (the model has " + std::to_string(c.numLayers) + " layers)" : ""));
    }
    // SparseK layers train through the kernels on CUDA (head dim 64 or 128), elsewhere through the
    // dense reference.
    const bool sparsekKernels = in.device == "cuda" && (c.headDim() == 64 || c.headDim() == 128);
    for (const auto& spec : in.pattern.layers)
        if (spec.kind == AttentionKind::SparseK && !sparsekKernels && o.context > kMaxSparseKContext)
            throw InputError("--pattern: sparsek layers train with the dense reference (T x T per head) on " + in.device +
                             (in.device == "cuda" ? " for head dim " + std::to_string(c.headDim()) : std::string()) +
                             ", so --context must be at most " + std::to_string(kMaxSparseKContext) + " (got " +
                             std::to_string(o.context) + ")");
    std::error_code ec;
    fs::create_directories(o.out, ec);
    if (ec || !fs::is_directory(o.out, ec))
        throw InputError(o.out + ": cannot create the output folder (" + ec.message() + ")");
    checkWritable(join(o.out, "training.json"));
    if (exists(join(o.out, "training.json")))
        throw InputError(o.out + ": already holds a trained model (training.json); choose another --out");
    if (!exists(join(o.out, "checkpoint/state.json")) && exists(join(o.out, "model.safetensors")))
        throw InputError(o.out + ": already holds a model (and no checkpoint to resume); choose another --out");
    return in;
}

// ---- the model being trained -----------------------------------------------------------------

struct Trainee {
    std::unique_ptr<ModelImpl> masters;  // fp32, requires_grad
    std::vector<std::pair<std::string, at::Tensor*>> params;
    std::map<std::string, at::Tensor> m, v;  // AdamW moments
};

// Empty placeholders in `dst` wherever `src` has optional tensors, so that both list the same
// parameters in the same order (namedParameters lists lm_head and scorers only when defined).
void matchOptionalTensors(ModelImpl& dst, const ModelImpl& src) {
    dst.layers.resize(src.layers.size());
    if (src.lmHead.defined()) dst.lmHead = at::empty({0});
    for (size_t l = 0; l < src.layers.size(); ++l) {
        if (src.layers[l].sparsekScore.defined()) dst.layers[l].sparsekScore = at::empty({0});
        if (src.layers[l].sparsekPosition.defined()) dst.layers[l].sparsekPosition = at::empty({0});
    }
}

// fp32 masters of the starting model; SparseK layers of the pattern without a scoring network get
// one (w = 0, β = recency: the latest candidates first) and other layers drop theirs.
Trainee makeTrainee(const Model& start, const ModelConfig& config, const LayerPattern& pattern, double recency) {
    Trainee t;
    t.masters = std::make_unique<ModelImpl>();
    ModelImpl& src = start.impl();
    t.masters->config = config;
    t.masters->device = src.device;
    t.masters->computeType = src.computeType;
    t.masters->tokenizer = src.tokenizer;
    matchOptionalTensors(*t.masters, src);
    auto srcParams = src.namedParameters();
    auto dstParams = t.masters->namedParameters();
    for (size_t i = 0; i < srcParams.size(); ++i)
        *dstParams[i].second = srcParams[i].second->detach().to(at::kFloat).clone().requires_grad_(true);
    for (size_t l = 0; l < pattern.layers.size(); ++l) {
        at::Tensor& score = t.masters->layers[l].sparsekScore;
        at::Tensor& slope = t.masters->layers[l].sparsekPosition;
        if (pattern.layers[l].kind != AttentionKind::SparseK) {
            score = at::Tensor();
            slope = at::Tensor();
            continue;
        }
        auto f32 = at::TensorOptions().dtype(at::kFloat).device(src.device);
        if (!score.defined()) {
            score = at::zeros({config.numHeads, config.headDim()}, f32).requires_grad_(true);
            slope = at::full({config.numHeads}, recency, f32).requires_grad_(true);
        }
    }
    t.params = t.masters->namedParameters();
    for (auto& [name, p] : t.params) {
        t.m[name] = at::zeros_like(*p).detach();
        t.v[name] = at::zeros_like(*p).detach();
    }
    return t;
}

// The compute copy: on CUDA the masters cast to bf16 (differentiable), on the CPU the masters.
std::unique_ptr<ModelImpl> computeView(const Trainee& t) {
    auto w = std::make_unique<ModelImpl>();
    w->config = t.masters->config;
    w->device = t.masters->device;
    w->computeType = t.masters->computeType;
    matchOptionalTensors(*w, *t.masters);
    auto dst = w->namedParameters();
    for (size_t i = 0; i < t.params.size(); ++i) *dst[i].second = t.params[i].second->to(w->computeType);
    return w;
}

// Differentiable attention with the pattern's masks: full layers through SDPA (cuDNN/flash on
// the GPU), window and block layers through spanscope's own kernels and their backward — the very
// code the analysis runs, so training and analysis apply the same masks (span_mask.h).
// SPANSCOPE_TRAIN_ATTENTION=sdpa runs window/block layers through SDPA with a dense boolean mask
// instead (O(T²) work; a fallback and a cross-check).
// SparseK layers: the fused kernels and their backward on CUDA, the dense differentiable reference
// elsewhere (engine/span_autograd.h), with the layer's key scores (sparsekKeyScores).
AttentionFn trainingAttention(const LayerPattern& pattern, const ModelImpl& m) {
    const char* env = std::getenv("SPANSCOPE_TRAIN_ATTENTION");
    const bool sdpa = env && std::string(env) == "sdpa";
    return [pattern, sdpa, &m](int layer, const at::Tensor& q, const at::Tensor& k, const at::Tensor& v) {
        const LayerSpec& spec = pattern.layers.at(static_cast<size_t>(layer));
        if (spec.kind == AttentionKind::Full) return at::scaled_dot_product_attention(q, k, v, {}, 0.0, true);
        if (spec.kind == AttentionKind::SparseK) {
            return sparsekAttentionAutograd(q, k, v, sparsekKeyScores(m, layer, v), static_cast<double>(spec.topK), spec.span,
                                            1.0 / std::sqrt(static_cast<double>(q.size(-1))));
        }
        if (sdpa) {
            const int64_t T = q.size(2);
            return at::scaled_dot_product_attention(q, k, v, blockMask(spec.mask(), 0, T, 0, T, q.options()), 0.0, false);
        }
        return spanAttentionAutograd(q, k, v, spec.mask(), 1.0 / std::sqrt(static_cast<double>(q.size(-1))));
    };
}

// Mean next-token loss over a batch of windows (B, T+1) of token ids.
at::Tensor batchLoss(const ModelImpl& m, const at::Tensor& windows, const AttentionFn& attention) {
    const int64_t T = windows.size(1) - 1;
    auto inputs = windows.slice(1, 0, T), targets = windows.slice(1, 1, T + 1);
    auto x = at::embedding(m.embed, inputs);
    auto hidden = runLayers(m, x, 0, static_cast<int>(m.layers.size()), attention);
    auto lg = logits(m, hidden);  // (B, T, V) fp32
    return at::cross_entropy_loss(lg.reshape({-1, lg.size(-1)}), targets.reshape({-1}));
}

at::Tensor windowsAt(const TokenData& d, const std::vector<int64_t>& starts, int64_t len, const at::Device& device) {
    auto out = at::empty({static_cast<int64_t>(starts.size()), len}, at::kLong);
    auto* p = out.data_ptr<int64_t>();
    for (size_t b = 0; b < starts.size(); ++b)
        for (int64_t t = 0; t < len; ++t) p[static_cast<int64_t>(b) * len + t] = d.ids[static_cast<size_t>(starts[b] + t)];
    return out.to(device);
}

std::vector<int64_t> stepStarts(const TrainOptions& o, int64_t step, int64_t dataTokens) {
    std::mt19937_64 gen(o.seed * 0x9E3779B97F4A7C15ull + static_cast<uint64_t>(step) * 0xBF58476D1CE4E5B9ull + 1);
    std::uniform_int_distribution<int64_t> pick(0, dataTokens - (o.context + 1));
    std::vector<int64_t> s(static_cast<size_t>(o.batch));
    for (auto& x : s) x = pick(gen);
    return s;
}

double evaluate(const ModelImpl& m, const TokenData& d, int64_t context, int64_t maxWindows, int64_t batch,
                const LayerPattern& pattern) {
    c10::NoGradGuard noGrad;
    const int64_t windows = std::max<int64_t>(1, std::min<int64_t>(maxWindows, (static_cast<int64_t>(d.ids.size()) - 1) / context));
    auto attention = trainingAttention(pattern, m);
    double sum = 0;
    for (int64_t w0 = 0; w0 < windows; w0 += batch) {
        std::vector<int64_t> starts;
        for (int64_t w = w0; w < std::min(windows, w0 + batch); ++w) starts.push_back(w * context);
        auto loss = batchLoss(m, windowsAt(d, starts, context + 1, m.device), attention);
        sum += loss.item<double>() * static_cast<double>(starts.size());
    }
    return sum / static_cast<double>(windows);
}

double learningRate(const TrainOptions& o, int64_t step) {
    if (step < o.warmup) return o.lr * static_cast<double>(step + 1) / static_cast<double>(o.warmup);
    const double span = static_cast<double>(std::max<int64_t>(1, o.steps - o.warmup));
    const double progress = std::min(1.0, static_cast<double>(step - o.warmup) / span);
    const double minLr = o.lr * o.minLrRatio;
    return minLr + 0.5 * (o.lr - minLr) * (1.0 + std::cos(M_PI * progress));
}

// AdamW with decoupled weight decay on matrices (not on norms); returns the gradient norm
// before clipping.
double optimizerStep(Trainee& t, const TrainOptions& o, int64_t step, double lr) {
    c10::NoGradGuard noGrad;
    std::vector<at::Tensor> grads;
    for (auto& [name, p] : t.params) grads.push_back(p->grad().defined() ? p->grad() : at::zeros_like(*p));
    auto norms = at::stack(at::_foreach_norm(grads));
    const double norm = norms.pow(2).sum().sqrt().item<double>();
    if (!std::isfinite(norm)) throw Error("training diverged: the gradient norm is " + std::to_string(norm) + " at step " + std::to_string(step));
    const double scale = norm > o.clip ? o.clip / (norm + 1e-6) : 1.0;
    const double b1c = 1.0 - std::pow(o.beta1, static_cast<double>(step + 1));
    const double b2c = 1.0 - std::pow(o.beta2, static_cast<double>(step + 1));
    for (size_t i = 0; i < t.params.size(); ++i) {
        const std::string& name = t.params[i].first;
        at::Tensor& p = *t.params[i].second;
        auto g = grads[i] * scale;
        auto& m = t.m[name];
        auto& v = t.v[name];
        m.mul_(o.beta1).add_(g, 1.0 - o.beta1);
        v.mul_(o.beta2).addcmul_(g, g, 1.0 - o.beta2);
        if (p.dim() >= 2 && o.weightDecay > 0) p.mul_(1.0 - lr * o.weightDecay);
        auto denom = (v / b2c).sqrt_().add_(o.eps);
        p.addcdiv_(m, denom, -lr / b1c);
        p.mutable_grad() = at::Tensor();
    }
    return norm;
}

// ---- checkpoints ---------------------------------------------------------------------------------

std::vector<TensorToWrite> tensorsToWrite(const std::vector<std::pair<std::string, at::Tensor>>& named,
                                          std::vector<at::Tensor>& keep) {
    std::vector<TensorToWrite> out;
    for (const auto& [name, t] : named) {
        keep.push_back(t.detach().to(at::kCPU, at::kFloat).contiguous());
        const auto& c = keep.back();
        out.push_back({name, DType::F32, c.sizes().vec(), c.data_ptr(), static_cast<size_t>(c.nbytes())});
    }
    return out;
}

nlohmann::json identity(const TrainOptions& o, const Inputs& in, const ModelConfig& c) {
    return {{"layers", c.numLayers},        {"hidden", c.hiddenSize},       {"heads", c.numHeads},
            {"kv_heads", c.numKvHeads},     {"intermediate", c.intermediateSize}, {"vocab", c.vocabSize},
            {"pattern", in.pattern.text()}, {"context", o.context},         {"batch", o.batch},
            {"steps", o.steps},             {"seed", o.seed},               {"train_data_hash", in.train.hash},
            {"init", o.init}};
}

void writeCheckpoint(const std::string& out, const Trainee& t, const nlohmann::json& state) {
    const std::string tmp = join(out, "checkpoint.tmp"), final = join(out, "checkpoint"), old = join(out, "checkpoint.old");
    removeFlatFolder(tmp);
    std::error_code ec;
    fs::create_directories(tmp, ec);
    if (ec) throw InputError(tmp + ": cannot create (" + ec.message() + ")");
    std::vector<at::Tensor> keep;
    std::vector<std::pair<std::string, at::Tensor>> weights, moments;
    for (const auto& [name, p] : t.params) {
        weights.emplace_back(name, *p);
        moments.emplace_back("m." + name, t.m.at(name));
        moments.emplace_back("v." + name, t.v.at(name));
    }
    writeSafetensors(join(tmp, "model.safetensors"), tensorsToWrite(weights, keep));
    keep.clear();
    writeSafetensors(join(tmp, "optimizer.safetensors"), tensorsToWrite(moments, keep));
    writeFileAtomic(join(tmp, "state.json"), state.dump(1) + "\n");
    // Swap the folders: at every moment either checkpoint/ or checkpoint.old/ is complete.
    removeFlatFolder(old);
    if (exists(final) && std::rename(final.c_str(), old.c_str()) != 0)
        throw InputError(final + ": cannot replace the checkpoint (" + std::strerror(errno) + ")");
    if (std::rename(tmp.c_str(), final.c_str()) != 0)
        throw InputError(final + ": cannot write the checkpoint (" + std::strerror(errno) + ")");
    removeFlatFolder(old);
}

void loadTensors(const std::string& path, const std::string& prefix, std::vector<std::pair<std::string, at::Tensor*>> into) {
    SafetensorsFile f = SafetensorsFile::open(path);
    for (auto& [name, t] : into) {
        const TensorInfo* info = f.find(prefix + name);
        if (!info || info->dtype != DType::F32 || at::IntArrayRef(info->shape) != t->sizes())
            throw InputError(path + ": tensor '" + prefix + name + "' is missing or has the wrong shape");
        auto src = at::empty(info->shape, at::kFloat);
        std::memcpy(src.data_ptr(), f.data(*info), static_cast<size_t>(info->end - info->begin));
        c10::NoGradGuard noGrad;
        t->copy_(src);
    }
}

nlohmann::json resumeFrom(const std::string& out, Trainee& t, const nlohmann::json& id) {
    const std::string dir = join(out, "checkpoint");
    nlohmann::json state;
    try {
        state = nlohmann::json::parse(readFile(join(dir, "state.json")));
    } catch (const nlohmann::json::exception& e) {
        throw InputError(join(dir, "state.json") + ": not valid JSON (" + e.what() + ")");
    }
    if (state.value("version", 0) != kStateVersion || !state.contains("identity") || !state.contains("step"))
        throw InputError(join(dir, "state.json") + ": not a spanscope training checkpoint");
    for (auto it = id.begin(); it != id.end(); ++it)
        if (state["identity"].value(it.key(), nlohmann::json()) != it.value())
            throw InputError(dir + ": was made with " + it.key() + " = " + state["identity"].value(it.key(), nlohmann::json()).dump() +
                             ", this run has " + it.value().dump() + "; resume with the same options or choose another --out");
    loadTensors(join(dir, "model.safetensors"), "", t.params);
    std::vector<std::pair<std::string, at::Tensor*>> ms, vs;
    for (auto& [name, p] : t.params) {
        ms.emplace_back(name, &t.m.at(name));
        vs.emplace_back(name, &t.v.at(name));
    }
    loadTensors(join(dir, "optimizer.safetensors"), "m.", ms);
    loadTensors(join(dir, "optimizer.safetensors"), "v.", vs);
    return state;
}

std::string utcNow() {
    std::time_t now = std::time(nullptr);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&now));
    return buf;
}

}  // namespace

void validateTraining(const TrainOptions& options) { loadInputs(options); }

TrainResult train(const TrainOptions& o, const std::function<void(const TrainProgress&)>& progress,
                  const std::atomic<bool>* stop) {
    Inputs in = loadInputs(o);
    ModelConfig config = in.model->config();
    config.maxPositions = o.context;
    config.trainedPattern = in.pattern.text();
    config.dtype = o.dtype;
    Trainee t = makeTrainee(*in.model, config, in.pattern, o.sparsekRecency);
    in.model.reset();
    const nlohmann::json id = identity(o, in, config);

    nlohmann::json state = {{"version", kStateVersion}, {"identity", id}, {"step", 0}, {"tokens", 0},
                            {"losses", nlohmann::json::array()}, {"evals", nlohmann::json::array()},
                            {"seconds", 0.0}, {"runs", nlohmann::json::array()}};
    const bool resumed = exists(join(o.out, "checkpoint/state.json"));
    if (resumed) state = resumeFrom(o.out, t, id);
    state["runs"].push_back({{"command", o.commandLine}, {"started", utcNow()}, {"from_step", state["step"]},
                             {"device", in.device}});

    TrainResult r;
    r.outDir = o.out;
    r.firstStep = r.lastStep = state["step"].get<int64_t>();
    const at::Device device = t.masters->device;
    const int64_t tokensPerStep = o.batch * o.context;
    const auto t0 = Clock::now();
    const double secondsBefore = state["seconds"].get<double>();
    bool firstReport = resumed;

    auto saveCheckpoint = [&](int64_t step) {
        state["step"] = step;
        state["seconds"] = secondsBefore + std::chrono::duration<double>(Clock::now() - t0).count();
        writeCheckpoint(o.out, t, state);
    };

    for (int64_t step = r.firstStep; step < o.steps; ++step) {
        if ((stop && stop->load()) || (o.stopAfterSteps > 0 && step - r.firstStep >= o.stopAfterSteps)) {
            saveCheckpoint(step);
            return r;
        }
        const double lr = learningRate(o, step);
        auto work = computeView(t);
        const auto attention = trainingAttention(in.pattern, *work);
        auto loss = batchLoss(*work, windowsAt(in.train, stepStarts(o, step, static_cast<int64_t>(in.train.ids.size())),
                                               o.context + 1, device),
                              attention);
        loss.backward();
        const double lossValue = loss.item<double>();
        if (!std::isfinite(lossValue))
            throw Error("training diverged: loss is " + std::to_string(lossValue) + " at step " + std::to_string(step));
        const double gradNorm = optimizerStep(t, o, step, lr);
        work.reset();
        state["losses"].push_back(lossValue);
        state["tokens"] = state["tokens"].get<int64_t>() + tokensPerStep;
        r.losses.push_back(lossValue);
        r.lastLoss = lossValue;
        r.lastStep = step + 1;

        TrainProgress p;
        p.step = step + 1;
        p.steps = o.steps;
        p.loss = lossValue;
        p.lr = lr;
        p.gradNorm = gradNorm;
        p.resumed = firstReport;
        const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
        p.tokensPerSecond = static_cast<double>((step + 1 - r.firstStep) * tokensPerStep) / std::max(1e-9, secs);
        p.secondsLeft = secs / static_cast<double>(step + 1 - r.firstStep) * static_cast<double>(o.steps - step - 1);
        const bool evalNow = (step + 1) % o.evalEvery == 0 || step + 1 == o.steps;
        if (evalNow) {
            auto view = computeView(t);
            p.valLoss = evaluate(*view, in.val, o.context, o.evalBatches * o.batch, o.batch, in.pattern);
            state["evals"].push_back({{"step", step + 1}, {"val_loss", p.valLoss}});
            r.lastValLoss = p.valLoss;
        }
        if (progress && (evalNow || (step + 1) % o.logEvery == 0 || firstReport || step == r.firstStep)) {
            progress(p);
            firstReport = false;
        }
        if ((step + 1) % o.checkpointEvery == 0 && step + 1 < o.steps) saveCheckpoint(step + 1);
    }

    // Finished: the final checkpoint, then the model folder, the record last.
    saveCheckpoint(o.steps);
    {
        auto impl = std::make_unique<ModelImpl>();
        impl->config = config;
        impl->device = device;
        impl->computeType = at::kFloat;
        matchOptionalTensors(*impl, *t.masters);
        auto dst = impl->namedParameters();
        for (size_t i = 0; i < t.params.size(); ++i) *dst[i].second = t.params[i].second->detach();
        impl->tokenizer = t.masters->tokenizer;
        Model::fromImpl(std::move(impl))->save(o.out);
    }
    nlohmann::json record = {
        {"spanscope_training_record", 1},
        {"finished", utcNow()},
        {"config", config.toJson()},
        {"parameters", config.parameterCount()},
        {"pattern", in.pattern.text()},
        {"options", {{"context", o.context}, {"batch", o.batch}, {"steps", o.steps}, {"lr", o.lr},
                     {"min_lr_ratio", o.minLrRatio}, {"warmup", o.warmup}, {"weight_decay", o.weightDecay},
                     {"sparsek_recency", o.sparsekRecency},
                     {"beta1", o.beta1}, {"beta2", o.beta2}, {"eps", o.eps}, {"clip", o.clip},
                     {"eval_every", o.evalEvery}, {"eval_batches", o.evalBatches}, {"seed", o.seed},
                     {"dtype", o.dtype}, {"init", o.init}, {"tokenizer", o.tokenizer}}},
        {"data", {{"train", {{"path", o.trainData}, {"hash", in.train.hash}, {"tokens", in.train.ids.size()},
                             {"documents", in.train.documents}}},
                  {"val", {{"path", o.valData}, {"hash", in.val.hash}, {"tokens", in.val.ids.size()},
                           {"documents", in.val.documents}}}}},
        {"steps", o.steps},
        {"tokens", state["tokens"]},
        {"seconds", state["seconds"]},
        {"final_train_loss", r.lastLoss},
        {"final_val_loss", r.lastValLoss},
        {"evals", state["evals"]},
        {"losses", state["losses"]},
        {"runs", state["runs"]}};
    writeFileAtomic(join(o.out, "training.json"), record.dump(1) + "\n");
    r.finished = true;
    return r;
}

double evaluateModel(const std::string& modelDir, const std::string& tokensPath, int64_t context, int64_t maxTokens,
                     const std::string& pattern, const std::string& device) {
    auto model = Model::load(modelDir, device);
    TokenData d = TokenData::load(tokensPath);
    if (model->hasTokenizer() && model->tokenizer().vocabSize() != d.vocabSize)
        throw InputError(tokensPath + ": made with a tokenizer of " + std::to_string(d.vocabSize) +
                         " tokens, but the model's has " + std::to_string(model->tokenizer().vocabSize()));
    if (static_cast<int64_t>(d.ids.size()) < context + 1)
        throw InputError(tokensPath + ": fewer tokens than one window of " + std::to_string(context + 1));
    const ModelConfig& c = model->config();
    const std::string p = !pattern.empty() ? pattern : !c.trainedPattern.empty() ? c.trainedPattern : "full";
    const int64_t windows = std::max<int64_t>(1, std::min<int64_t>(maxTokens, static_cast<int64_t>(d.ids.size()) - 1) / context);
    return evaluate(model->impl(), d, context, windows, 4, parsePattern(p, static_cast<int>(c.numLayers)));
}

}  // namespace spanscope
