#include "app/cli_commands.h"

#include <climits>

#include "engine/token_data.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "engine/analysis.h"
#include "engine/analysis_json.h"
#include "engine/atomic_file.h"
#include "engine/bpe_trainer.h"
#include "engine/document.h"
#include "engine/errors.h"
#include "engine/format.h"
#include "engine/model.h"
#include "engine/tokenizer.h"

namespace spanscope::cli {
namespace {

// Progress on stderr: rewrites one line on a terminal, prints every ~10% otherwise.
class Progress {
public:
    explicit Progress(std::string label) : m_label(std::move(label)), m_tty(isatty(STDERR_FILENO) != 0) {}
    void update(int done, int total) {
        const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - m_start).count();
        const int decile = total > 0 ? done * 10 / total : 10;
        if (!m_tty && decile == m_lastDecile && done != total) return;
        m_lastDecile = decile;
        std::fprintf(stderr, "%s[%s] %d/%d  %.1f s%s", m_tty ? "\r" : "", m_label.c_str(), done, total, secs,
                     m_tty && done != total ? "" : "\n");
        std::fflush(stderr);
    }

private:
    std::string m_label;
    bool m_tty;
    int m_lastDecile = -1;
    std::chrono::steady_clock::time_point m_start = std::chrono::steady_clock::now();
};

struct LoadedRun {
    std::shared_ptr<Model> model;
    std::string text;
    std::vector<int32_t> tokens;
    RunSettings settings;
};

LoadedRun loadRun(const CommonRun& r) {
    checkFirstTokens(r.firstTokens);
    if (!r.jsonOut.empty()) checkWritable(r.jsonOut);  // fail before the work, not after
    LoadedRun lr;
    lr.text = loadDocument(r.docPath);  // check the document before the (slower) model load
    lr.model = Model::load(r.modelDir, r.device);
    Encoding encoding = lr.model->tokenizer().encode(lr.text);
    keepFirstTokens(encoding, r.firstTokens);
    lr.tokens = std::move(encoding.ids);
    checkTokenCount(static_cast<int64_t>(lr.tokens.size()), r.maxTokens, r.docPath);
    lr.settings = {r.commandLine, r.modelDir, r.docPath, fnv1a64Hex(lr.text), static_cast<int64_t>(lr.text.size()),
                   lr.model->device(), false};
    return lr;
}

void writeJson(const std::string& path, const nlohmann::json& j) {
    if (path.empty()) return;
    writeFileAtomic(path, j.dump(1) + "\n");
    std::printf("wrote %s\n", path.c_str());
}

std::string spanText(const LayerSpec& s) { return s.kind == AttentionKind::Full ? "-" : std::to_string(s.span); }

void printHeader(const LoadedRun& lr, const CommonRun& r) {
    const auto& c = lr.model->config();
    std::printf("document  %s (%s, %zu tokens)\n", r.docPath.c_str(), formatBytes(static_cast<double>(lr.text.size())).c_str(),
                lr.tokens.size());
    std::printf("model     %s (%s, %lld layers, %lld heads x %lld, %s parameters) on %s\n", r.modelDir.c_str(),
                c.modelType.c_str(), static_cast<long long>(c.numLayers), static_cast<long long>(c.numHeads),
                static_cast<long long>(c.headDim()), formatCount(static_cast<double>(c.parameterCount())).c_str(),
                lr.model->device().c_str());
}

}  // namespace

int runAnalyze(const AnalyzeArgs& a) {
    LoadedRun lr = loadRun(a.run);
    const auto& c = lr.model->config();
    AnalysisOptions o;
    std::string patternText = !a.pattern.empty() ? a.pattern : !c.trainedPattern.empty() ? c.trainedPattern : "full";
    o.pattern = parsePattern(patternText, static_cast<int>(c.numLayers));
    o.poolSize = a.poolSize;
    o.beyondSpan = a.beyondSpan;
    o.sinkTokens = a.sinkTokens;
    o.queryRows = a.rows;
    for (int64_t row : a.rows)
        if (row < 0 || row >= static_cast<int64_t>(lr.tokens.size()))
            throw InputError("--rows: position " + std::to_string(row) + " is outside the document's 0.." +
                             std::to_string(lr.tokens.size() - 1));
    Progress progress("analyze: layer");
    o.progress = [&](int done, int total) { progress.update(done, total); };
    AnalysisResult r = analyze(*lr.model, lr.tokens, o);
    std::vector<double> warm;  // the first run pays for allocation and (on CUDA) kernel loading
    for (int i = 1; i < a.repeat; ++i) warm.push_back(analyze(*lr.model, lr.tokens, o).seconds);

    printHeader(lr, a.run);
    std::printf("pattern   %s   (boundary l = %d; mass beyond span measured at distance >= %lld)\n\n",
                r.pattern.text().c_str(), r.pattern.boundary(), static_cast<long long>(r.beyondSpan));
    std::printf("layer  kind      span   pairs    cost%%  beyond  mean-dist  entropy  sink    time\n");
    for (size_t l = 0; l < r.layers.size(); ++l) {
        const LayerAnalysis& la = r.layers[l];
        std::printf("%5zu  %-8s %5s  %7s  %6.1f  %6.3f  %9.1f  %7.3f  %5.3f  %5.2fs\n", l,
                    attentionKindName(la.spec.kind), spanText(la.spec).c_str(),
                    formatCount(static_cast<double>(la.cost.pairs)).c_str(), 100.0 * la.cost.shareOfFull,
                    la.headMean.beyondMass, la.headMean.meanDistance, la.headMean.entropy, la.headMean.sinkMass,
                    la.seconds);
    }
    bool selectionsHeader = false;
    for (size_t l = 0; l < r.layers.size(); ++l) {
        const SelectionSummary s = summarizeSelections(r.layers[l]);
        if (!s.present) continue;
        if (!selectionsHeader) std::printf("\nSparseK selections (per query and head, beyond the local window)\n");
        selectionsHeader = true;
        const int64_t b = s.medianBin;
        std::printf("%5zu  %s: %.1f keys selected (mask sum %.1f, %.1f%% fractional), median distance in [%lld, %lld), "
                    "most picked positions:", l, r.layers[l].spec.text().c_str(), s.selectedPerQuery, s.maskPerQuery,
                    100.0 * s.fractionalShare, static_cast<long long>(b == 0 ? 0 : int64_t{1} << (b - 1)),
                    static_cast<long long>(int64_t{1} << b));
        for (int64_t pos : s.mostPicked) std::printf(" %lld", static_cast<long long>(pos));
        std::printf("\n");
    }
    std::printf("\nloss      %.4f nats/token   perplexity %.2f   (beyond position 2048: %.4f)\n", r.meanLoss,
                r.perplexity, meanLossFrom(r.tokenLoss, 2048));
    std::printf("cost      C = %.4f (%.1f%% of all-full attention)   attention %s FLOP   KV cache %s (all-full %s)\n",
                r.cost.relativeCost, 100.0 * r.cost.relativeCost, formatCount(r.cost.flops).c_str(),
                formatBytes(r.cost.kvCacheBytes).c_str(), formatBytes(r.cost.fullKvCacheBytes).c_str());
    std::printf("time      %.2f s (%.0f tokens/s)\n", r.seconds, static_cast<double>(r.numTokens) / r.seconds);
    if (!warm.empty()) {
        std::sort(warm.begin(), warm.end());
        std::printf("latency   warm runs: min %.1f ms, median %.1f ms over %zu runs (first run %.1f ms)\n",
                    1e3 * warm.front(), 1e3 * warm[warm.size() / 2], warm.size(), 1e3 * r.seconds);
    }
    RunSettings s = lr.settings;
    s.includeMaps = a.includeMaps;
    writeJson(a.run.jsonOut, analysisToJson(r, c, s));
    return 0;
}

int runSweep(const SweepArgs& a) {
    LoadedRun lr = loadRun(a.run);
    const auto& c = lr.model->config();
    LayerSpec sparse = parseLayerSpec(a.sparse);
    Progress progress("sweep: layer passes");
    auto points = sweepBoundary(*lr.model, lr.tokens, sparse, [&](int d, int t) { progress.update(d, t); });
    printHeader(lr, a.run);
    std::printf("sparse    %s above the boundary\n\n", sparse.text().c_str());
    std::printf("    l       C   loss (nats)   perplexity   loss beyond 2048\n");
    for (const auto& p : points)
        std::printf("%5d  %6.4f  %12.4f  %11.2f  %17.4f\n", p.boundary, p.relativeCost, p.meanLoss, p.perplexity,
                    meanLossFrom(p.tokenLoss, 2048));
    writeJson(a.run.jsonOut, sweepToJson(points, sparse, c, lr.settings, static_cast<int64_t>(lr.tokens.size())));
    return 0;
}

int runCost(const CostArgs& a) {
    if (a.layers <= 0 || a.layers > 4096) throw InputError("--layers must be in 1..4096");
    LayerPattern p = a.pattern.empty()
                         ? masformerPattern(static_cast<int>(a.layers), static_cast<int>(a.boundary), parseLayerSpec(a.sparse))
                         : parsePattern(a.pattern, static_cast<int>(a.layers));
    CostSummary s = patternCost(p, {a.tokens, a.heads, a.headDim, a.bytesPerElement, 128});
    std::printf("pattern %s   n = %lld tokens, H = %lld, d = %lld\n\n", p.text().c_str(), static_cast<long long>(a.tokens),
                static_cast<long long>(a.heads), static_cast<long long>(a.headDim));
    std::printf("layer  spec             pairs      FLOP     bytes   KV cache  share\n");
    for (size_t l = 0; l < s.layers.size(); ++l) {
        const LayerCost& lc = s.layers[l];
        std::printf("%5zu  %-14s %7s  %8s  %8s  %9s  %5.1f%%\n", l, p.layers[l].text().c_str(),
                    formatCount(static_cast<double>(lc.pairs)).c_str(), formatCount(lc.flops).c_str(),
                    formatBytes(lc.bytes).c_str(), formatBytes(lc.kvCacheBytes).c_str(), 100.0 * lc.shareOfFull);
    }
    std::printf("\ntotal  pairs %s   FLOP %s (all-full %s)   KV cache %s (all-full %s)\n",
                formatCount(static_cast<double>(s.pairs)).c_str(), formatCount(s.flops).c_str(),
                formatCount(s.fullFlops).c_str(), formatBytes(s.kvCacheBytes).c_str(), formatBytes(s.fullKvCacheBytes).c_str());
    std::printf("C = %.4f (%.1f%% of all-full attention)", s.relativeCost, 100.0 * s.relativeCost);
    if (a.pattern.empty())
        std::printf("; paper's closed form l/L + (1-l/L)*span/n = %.4f",
                    masformerClosedFormCost(static_cast<int>(a.layers), static_cast<int>(a.boundary),
                                            parseLayerSpec(a.sparse).span, a.tokens));
    std::printf("\n");
    if (!a.jsonOut.empty()) {
        nlohmann::json j = costToJson(p, s);
        j["schema_version"] = kJsonSchemaVersion;
        j["kind"] = "cost";
        j["tokens"] = a.tokens;
        j["heads"] = a.heads;
        j["head_dim"] = a.headDim;
        writeJson(a.jsonOut, j);
    }
    return 0;
}

int runInitModel(const InitModelArgs& a) {
    auto tok = std::make_shared<Tokenizer>(Tokenizer::load(a.tokenizer));
    ModelConfig c;
    c.vocabSize = tok->vocabSize();
    c.hiddenSize = a.hidden;
    c.numLayers = a.layers;
    c.numHeads = c.numKvHeads = a.heads;
    c.intermediateSize = a.intermediate;
    c.maxPositions = a.context;
    c.dtype = a.dtype;
    if (!a.pattern.empty()) c.trainedPattern = parsePattern(a.pattern, static_cast<int>(a.layers)).text();
    c.validate("init-model");
    auto model = Model::createRandom(c, a.seed, "cpu");
    model->setTokenizer(tok);
    model->save(a.out);
    std::printf("wrote %s: random model, %lld layers, %lld heads x %lld, %s parameters, vocab %lld (seed %llu)\n",
                a.out.c_str(), static_cast<long long>(c.numLayers), static_cast<long long>(c.numHeads),
                static_cast<long long>(c.headDim()), formatCount(static_cast<double>(c.parameterCount())).c_str(),
                static_cast<long long>(c.vocabSize), static_cast<unsigned long long>(a.seed));
    return 0;
}

int runTrainTokenizer(const TrainTokenizerArgs& a) {
    std::vector<std::string> texts;
    for (const auto& path : a.inputs) texts.push_back(loadDocument(path, INT64_MAX));
    std::vector<std::string_view> views;  // corpus files hold many documents, one per <|endoftext|>
    for (const auto& t : texts)
        for (auto d : splitDocuments(t)) views.push_back(d);
    BpeTrainerOptions o;
    o.vocabSize = static_cast<int32_t>(a.vocabSize);
    Progress progress("train-tokenizer: %");
    o.progress = [&](double f) { progress.update(static_cast<int>(f * 100.0), 100); };
    checkWritable(a.out);
    Tokenizer t = trainBpe(views, o);
    t.save(a.out);
    std::printf("wrote %s: byte-level BPE, %d tokens, trained on %zu files\n", a.out.c_str(), t.vocabSize(), texts.size());
    return 0;
}

}  // namespace spanscope::cli
