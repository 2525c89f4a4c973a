// Training and continual training of a mixed-span model (LibTorch; this header is torch-free).
//
// A run reads token files (token_data.h), starts from a fresh random model (shape options) or
// from a model folder (`init`, e.g. continual training at a longer context into another
// pattern), and trains with AdamW (decoupled weight decay on matrices only), linear warm-up then
// cosine decay to minLrRatio·lr, gradient clipping by global norm, fp32 master weights and
// (on CUDA) bf16 compute. Attention follows the layer pattern with the same masks the analysis
// uses (span_mask.h): full layers causal, window and block layers masked.
//
// Batches: step s draws `batch` windows of context+1 tokens at positions from a generator seeded
// by (seed, s), so a run is reproducible and a resumed run sees exactly the batches the
// uninterrupted one would have seen.
//
// Output folder `out`:
//   checkpoint/   model.safetensors (fp32 masters), optimizer.safetensors (AdamW moments),
//                 state.json (step, tokens, losses, options); replaced atomically as a whole
//                 (written to checkpoint.tmp/, then renamed), every checkpointEvery steps and
//                 when the run stops early (stopAfterSteps or a stop request)
//   config.json, model.safetensors, tokenizer.json, training.json  the finished model and its
//                 training record (options, data hashes, steps, tokens, loss history, command)
// If `out` holds a checkpoint, the run resumes from it, after checking that it was made with
// the same model shape, pattern, context and data; otherwise `out` must not hold a model yet.
// Every input is validated before any work (validateTraining): missing or corrupt data,
// tokenizer/data/model vocabulary mismatch, a pattern whose layer count differs from the model,
// a context longer than the data, an unwritable output folder.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace spanscope {

struct TrainOptions {
    std::string trainData, valData;  // .tokens files
    std::string out;
    // Start: a model folder to continue from, or a fresh model of this shape with `tokenizer`.
    std::string init;
    std::string tokenizer;
    int64_t layers = 12, hidden = 256, heads = 4, intermediate = 768;
    std::string pattern;             // text form; empty: the init model's trained pattern, else all full
    // Starting recency slope β of new SparseK scorers (u_j = w·v_j + β·j, w = 0): β ≥ 1 selects the
    // k latest keys before the window (a longer window), with a soft edge 1/β keys wide for β < 1
    // where the gradient reaches the scorer; 0 scores every key alike.
    double sparsekRecency = 1.0 / 16;
    int64_t context = 2048;          // tokens per sequence
    int64_t batch = 8;               // sequences per step
    int64_t steps = 1000;            // total optimizer steps of the run
    double lr = 1e-3, minLrRatio = 0.1;
    int64_t warmup = 100;
    double weightDecay = 0.1, beta1 = 0.9, beta2 = 0.95, eps = 1e-8, clip = 1.0;
    int64_t evalEvery = 200, evalBatches = 4, checkpointEvery = 200, logEvery = 10;
    uint64_t seed = 1;
    std::string device = "auto";
    std::string dtype = "bfloat16";  // storage dtype of the finished model
    int64_t stopAfterSteps = 0;      // > 0: stop (with a checkpoint) once this many steps ran in this call
    std::string commandLine;
};

struct TrainProgress {
    int64_t step = 0, steps = 0;
    double loss = 0, lr = 0, gradNorm = 0;
    double tokensPerSecond = 0, secondsLeft = 0;
    double valLoss = -1;             // >= 0 on steps that evaluated
    bool resumed = false;            // first report after resuming
};

struct TrainResult {
    int64_t firstStep = 0, lastStep = 0;  // steps [firstStep, lastStep) ran in this call
    bool finished = false;                // reached `steps` and wrote the final model
    double lastLoss = 0, lastValLoss = -1;
    std::vector<double> losses;           // training loss of every step run in this call
    std::string outDir;
};

// Checks every input without training; throws InputError naming the file or option at fault.
void validateTraining(const TrainOptions& options);

// Runs (or resumes) training. `progress` is called every logEvery steps and after evaluations;
// `stop` (optional) is polled between steps: when set, the run checkpoints and returns.
TrainResult train(const TrainOptions& options, const std::function<void(const TrainProgress&)>& progress = {},
                  const std::atomic<bool>* stop = nullptr);

// Mean next-token loss (nats) of a model folder on the first `maxTokens` tokens of a token file,
// in windows of `context` tokens — the training evaluation, for tests and reports.
double evaluateModel(const std::string& modelDir, const std::string& tokensPath, int64_t context, int64_t maxTokens,
                     const std::string& pattern, const std::string& device = "cpu");

}  // namespace spanscope
