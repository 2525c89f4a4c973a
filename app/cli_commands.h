// spanscope-cli sub-commands. Each takes its parsed options, prints a readable summary to stdout
// (progress to stderr), and throws spanscope::Error for bad input; main() turns that into one line
// and a non-zero exit.
#pragma once

#include <cstdint>

#include "engine/train.h"
#include <string>
#include <vector>

namespace spanscope::cli {

struct CommonRun {
    std::string modelDir;
    std::string docPath;
    std::string device = "cpu";
    int64_t maxTokens = 131072;
    int64_t firstTokens = 0;          // > 0: study only the document's first N tokens (e.g. the training context)
    std::string jsonOut;
    std::string commandLine;
};

struct AnalyzeArgs {
    CommonRun run;
    std::string pattern;              // empty: the model's trained pattern, else all full
    int64_t poolSize = 256;
    int64_t beyondSpan = 0;
    int64_t sinkTokens = 4;
    std::vector<int64_t> rows;
    bool includeMaps = false;
    int repeat = 1;                   // > 1: time this many runs, report warm latency
};

struct SweepArgs {
    CommonRun run;
    std::string sparse = "window:512";
};

struct CostArgs {
    int64_t layers = 24, boundary = 4, tokens = 8192, heads = 16, headDim = 64, bytesPerElement = 2;
    std::string sparse = "block:1024";
    std::string pattern;              // overrides layers/boundary/sparse when given
    std::string jsonOut;
};

struct InitModelArgs {
    std::string out, tokenizer;
    int64_t layers = 12, hidden = 256, heads = 4, intermediate = 768, context = 2048;
    uint64_t seed = 1;
    std::string dtype = "bfloat16";
    std::string pattern;
};

struct TrainTokenizerArgs {
    std::string out;
    std::vector<std::string> inputs;
    int64_t vocabSize = 4096;
};

// `report`: a figure set (PNG/SVG/PDF + CSV each), manifest.json and index.html in one folder.
// With `from` (a report's manifest.json), every setting comes from the manifest instead.
struct ReportArgs {
    CommonRun run;                    // modelDir, docPath, device, maxTokens (jsonOut unused)
    std::string pattern;              // empty: the model's trained pattern, else all full
    bool sweep = false;               // add perplexity against cost over l = 0..L
    std::string sparse;               // sparse kind of the sweep; empty: the pattern's, else window:512
    std::vector<int64_t> layers;      // attention maps for these layers; empty: bottom, boundary, top
    std::string heads = "mean";       // maps of the head mean, or "all": also one per head
    int64_t poolSize = 256, beyondSpan = 0, sinkTokens = 4;
    std::string tint = "loss";        // document figure: loss, delta, attention or beyond
    int selectLayer = -1;             // layer of the tint, shaded in the layer stack; -1: the lowest sparse layer
    int selectHead = -1;              // head of the tint and the layer statistics; -1: the head mean
    int64_t query = -1;               // query token of the attention tint (its exact row is computed)
    std::vector<int64_t> textWindow;  // FIRST,COUNT tokens of the document figure; empty: around the query
    std::string compare;              // a second pattern drawn side by side with the first
    std::string out;
    std::string from;
    bool force = false;               // overwrite existing files
};

// `tokenize`: text files (documents separated by <|endoftext|> lines) -> one .tokens file.
struct TokenizeArgs {
    std::string tokenizer, out;
    std::vector<std::string> inputs;
    int threads = 0;                  // 0: all cores
};

// `evaluate`: mean next-token loss of a model on a .tokens file.
struct EvaluateArgs {
    std::string modelDir, tokens, pattern, device = "cpu", jsonOut;
    int64_t context = 2048, maxTokens = 1 << 20;
};

int runAnalyze(const AnalyzeArgs& a);
int runTokenize(const TokenizeArgs& a);
int runEvaluate(const EvaluateArgs& a);
int runReport(const ReportArgs& a);
int runSweep(const SweepArgs& a);
int runCost(const CostArgs& a);
int runInitModel(const InitModelArgs& a);
int runTrainTokenizer(const TrainTokenizerArgs& a);
int runTrain(const TrainOptions& o);

}  // namespace spanscope::cli
