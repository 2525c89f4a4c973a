// spanscope-cli report: the figure set of one analysis (distance profile, attention maps, per-token
// loss, perplexity against cost, cost table, the tinted document text, the layer stack, and with
// --compare a second pattern side by side), each as PNG/SVG/PDF with its CSV, plus manifest.json
// (every setting and both content hashes) and index.html. `--from manifest.json` regenerates it.
//
// Order matters for the overwrite and interruption rules: the settings are resolved and every
// output path is checked before any work, the output folder's writability is probed before the
// (slow) analysis, and every file is written through a temporary file renamed into place.
#include "app/cli_commands.h"

#include <sys/stat.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>

#include "engine/analysis.h"
#include "engine/analysis_json.h"
#include "engine/atomic_file.h"
#include "engine/document.h"
#include "engine/errors.h"
#include "engine/model.h"
#include "engine/report.h"
#include "engine/tokenizer.h"

namespace spanscope::cli {
namespace {

bool isDirectory(const std::string& p) {
    struct stat st {};
    return ::stat(p.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

std::string absolutePath(const std::string& p) {
    if (char* real = ::realpath(p.c_str(), nullptr)) {
        std::string s(real);
        std::free(real);
        return s;
    }
    return p;  // does not exist: the loader names it in its error
}

// Every setting a report depends on, resolved (no defaults left to chance), so that the manifest
// regenerates the same numbers.
struct ReportPlan {
    std::string modelDir, docPath, pattern, sparse, heads, device;
    bool sweep = false;
    std::vector<int64_t> layers;
    int64_t poolSize = 256, beyondSpan = 0, sinkTokens = 4, maxTokens = 131072, firstTokens = 0;
    // The Document, Layers and Compare figures; the text window is resolved once T is known.
    std::string tint = "loss", compare;
    int selectLayer = 0, selectHead = -1;
    int64_t query = -1, textFirst = -1, textCount = 0;
    std::string expectModelHash, expectDocumentHash;  // from a manifest: must match

    nlohmann::json toJson() const {
        return {{"model_dir", modelDir}, {"document", docPath},     {"pattern", pattern},       {"sweep", sweep},
                {"sparse", sparse},      {"layers", layers},        {"heads", heads},           {"pool", poolSize},
                {"beyond_span", beyondSpan}, {"sink_tokens", sinkTokens}, {"device", device}, {"max_tokens", maxTokens},
                {"first_tokens", firstTokens},
                {"tint", tint},          {"select_layer", selectLayer}, {"select_head", selectHead},
                {"query_token", query},  {"text_first", textFirst}, {"text_tokens", textCount}, {"compare", compare}};
    }
};

ReportPlan planFromManifest(const std::string& path) {
    nlohmann::json m;
    try {
        m = nlohmann::json::parse(readFile(path, 64 << 20));
    } catch (const nlohmann::json::exception& e) {
        throw InputError(path + ": not a valid manifest (" + std::string(e.what()) + ")");
    }
    if (!m.is_object() || m.value("kind", "") != "report") throw InputError(path + ": not a spanscope report manifest");
    if (m.value("schema_version", 0) != kJsonSchemaVersion)
        throw InputError(path + ": schema version " + m.value("schema_version", nlohmann::json()).dump() +
                         " is not " + std::to_string(kJsonSchemaVersion));
    try {
        const auto& s = m.at("settings");
        ReportPlan p;
        p.modelDir = s.at("model_dir").get<std::string>();
        p.docPath = s.at("document").get<std::string>();
        p.pattern = s.at("pattern").get<std::string>();
        p.sweep = s.at("sweep").get<bool>();
        p.sparse = s.at("sparse").get<std::string>();
        p.layers = s.at("layers").get<std::vector<int64_t>>();
        p.heads = s.at("heads").get<std::string>();
        p.poolSize = s.at("pool").get<int64_t>();
        p.beyondSpan = s.at("beyond_span").get<int64_t>();
        p.sinkTokens = s.at("sink_tokens").get<int64_t>();
        p.device = s.at("device").get<std::string>();
        p.maxTokens = s.at("max_tokens").get<int64_t>();
        p.firstTokens = s.value("first_tokens", int64_t{0});
        // Reports written before the Document, Layers and Compare figures existed lack these.
        p.tint = s.value("tint", p.tint);
        p.selectLayer = s.value("select_layer", 0);
        p.selectHead = s.value("select_head", -1);
        p.query = s.value("query_token", int64_t{-1});
        p.textFirst = s.value("text_first", int64_t{-1});
        p.textCount = s.value("text_tokens", int64_t{0});
        p.compare = s.value("compare", "");
        p.expectModelHash = m.at("model").at("fnv1a64").get<std::string>();
        p.expectDocumentHash = m.at("document").at("fnv1a64").get<std::string>();
        return p;
    } catch (const nlohmann::json::exception& e) {
        throw InputError(path + ": manifest is missing a setting (" + std::string(e.what()) + ")");
    }
}

ReportPlan planFromArgs(const ReportArgs& a, const ModelConfig& c) {
    ReportPlan p;
    p.modelDir = absolutePath(a.run.modelDir);
    p.docPath = absolutePath(a.run.docPath);
    const int L = static_cast<int>(c.numLayers);
    const LayerPattern pattern =
        parsePattern(!a.pattern.empty() ? a.pattern : !c.trainedPattern.empty() ? c.trainedPattern : "full", L);
    p.pattern = pattern.text();
    p.sweep = a.sweep;
    const LayerSpec sparse = pattern.sparseSpec();
    p.sparse = !a.sparse.empty() ? parseLayerSpec(a.sparse).text()
               : sparse.kind != AttentionKind::Full ? sparse.text() : "window:512";
    p.layers = a.layers;
    if (p.layers.empty()) p.layers = {0, std::min(pattern.boundary(), L - 1), L - 1};
    std::sort(p.layers.begin(), p.layers.end());
    p.layers.erase(std::unique(p.layers.begin(), p.layers.end()), p.layers.end());
    p.heads = a.heads;
    p.poolSize = a.poolSize;
    p.beyondSpan = a.beyondSpan;
    p.sinkTokens = a.sinkTokens;
    p.device = a.run.device;
    p.maxTokens = a.run.maxTokens;
    p.firstTokens = a.run.firstTokens;
    checkFirstTokens(p.firstTokens);
    p.tint = a.tint;
    p.selectLayer = a.selectLayer >= 0 ? a.selectLayer : std::min(pattern.boundary(), L - 1);
    p.selectHead = a.selectHead;
    p.query = a.query;
    if (a.textWindow.size() == 2) {
        if (a.textWindow[0] < 0 || a.textWindow[1] < 1 || a.textWindow[1] > kMaxTextTokens)
            throw InputError("--text-window: FIRST >= 0 and COUNT in 1.." + std::to_string(kMaxTextTokens));
        p.textFirst = a.textWindow[0];
        p.textCount = a.textWindow[1];
    }
    if (p.tint == "attention" && p.query < 0) throw InputError("--tint attention needs --query TOKEN");
    if (!a.compare.empty()) p.compare = parsePattern(a.compare, L).text();
    return p;
}

// The report's layout and provenance, before any analysis: enough to plan and check its files.
ReportInput inputFromPlan(const ReportPlan& p, const ModelConfig& config, const LayerPattern& pattern,
                          const LayerSpec& sparse, const std::string& commandLine) {
    ReportInput in;
    in.modelDir = p.modelDir;
    in.config = config;
    in.docPath = p.docPath;
    in.pattern = p.pattern;
    in.device = p.device;
    in.command = commandLine;
    in.settings = p.toJson();
    for (int64_t l : p.layers) {
        in.maps.push_back({l, -1});
        if (p.heads == "all")
            for (int h = 0; h < static_cast<int>(config.numHeads); ++h) in.maps.push_back({l, h});
    }
    in.withSweep = p.sweep;
    in.sweepSparse = sparse.text();
    in.selection = {parseTokenTint(p.tint), p.selectLayer, p.selectHead, p.query, p.textFirst, p.textCount};
    in.withCompare = !p.compare.empty();
    in.comparePattern = p.compare;
    const int L = static_cast<int>(config.numLayers);
    if (pattern == masformerPattern(L, pattern.boundary(), sparse)) in.currentBoundary = pattern.boundary();
    return in;
}

}  // namespace

int runReport(const ReportArgs& a) {
    // 1. Settings and outputs: everything that can fail fast, before any work.
    ReportPlan p;
    if (!a.from.empty()) p = planFromManifest(a.from);
    else if (a.run.modelDir.empty() || a.run.docPath.empty())
        throw InputError("report: give --model and --doc, or --from a report's manifest.json");
    const std::string modelDir = a.from.empty() ? a.run.modelDir : p.modelDir;
    if (!isDirectory(modelDir)) throw InputError(modelDir + ": model folder not found");
    const ModelConfig config = ModelConfig::load(modelDir + "/config.json");
    if (a.from.empty()) p = planFromArgs(a, config);
    const int L = static_cast<int>(config.numLayers);
    const LayerPattern pattern = parsePattern(p.pattern, L);
    const LayerSpec sparse = parseLayerSpec(p.sparse);
    if (p.sweep && sparse.kind == AttentionKind::Full) throw InputError("--sparse: the sweep's sparse kind must not be full");
    if (p.heads != "mean" && p.heads != "all") throw InputError("--heads must be mean or all, not '" + p.heads + "'");
    for (int64_t l : p.layers)
        if (l < 0 || l >= L)
            throw InputError("--layers: layer " + std::to_string(l) + " is outside the model's 0.." + std::to_string(L - 1));
    if (p.poolSize < 1 || p.poolSize > 1024) throw InputError("--pool must be in 1..1024");
    if (p.selectLayer < 0 || p.selectLayer >= L)
        throw InputError("--select-layer: layer " + std::to_string(p.selectLayer) + " is outside the model's 0.." +
                         std::to_string(L - 1));
    if (p.selectHead < -1 || p.selectHead >= config.numHeads)
        throw InputError("--select-head must be -1 (mean) or a head in 0.." + std::to_string(config.numHeads - 1));
    const LayerPattern comparePattern = p.compare.empty() ? LayerPattern{} : parsePattern(p.compare, L);

    std::string out = a.out;
    while (out.size() > 1 && out.back() == '/') out.pop_back();
    ReportInput in = inputFromPlan(p, config, pattern, sparse, a.run.commandLine);
    checkReportOutputs(in, out, a.force);

    // 2. Inputs, checked against the manifest when regenerating; then the output folder.
    const std::string text = loadDocument(p.docPath);
    in.docHash = fnv1a64Hex(text);
    in.modelHash = modelWeightsHash(p.modelDir, &in.modelHashedFiles);
    if (!p.expectDocumentHash.empty() && in.docHash != p.expectDocumentHash)
        throw InputError(p.docPath + ": document changed since the manifest was written (fnv1a64 " + in.docHash +
                         ", manifest " + p.expectDocumentHash + ")");
    if (!p.expectModelHash.empty() && in.modelHash != p.expectModelHash)
        throw InputError(p.modelDir + ": model weights changed since the manifest was written (fnv1a64 " + in.modelHash +
                         ", manifest " + p.expectModelHash + ")");
    makeDirectories(out);
    checkWritable(out + "/manifest.json");  // before the slow part: model load and analysis
    auto model = Model::load(p.modelDir, p.device);
    Encoding encoding = model->tokenizer().encode(text);
    keepFirstTokens(encoding, p.firstTokens);
    const std::vector<int32_t>& tokens = encoding.ids;
    const int64_t T = static_cast<int64_t>(tokens.size());
    checkTokenCount(T, p.maxTokens, p.docPath);
    if (p.query >= T)
        throw InputError("--query: token " + std::to_string(p.query) + " is past the document's " + std::to_string(T) +
                         " tokens");
    resolveTextWindow(in.selection, T);
    p.textFirst = in.selection.textFirst;
    p.textCount = in.selection.textCount;
    in.settings = p.toJson();
    in.docBytes = text.size();
    in.docTokens = tokens.size();

    // 3. The analysis, the all-full loss and the sweep.
    auto progress = [](const char* what) {
        return [what](int done, int total) { std::fprintf(stderr, "[report: %s] %d/%d\n", what, done, total); };
    };
    AnalysisOptions o;
    o.pattern = pattern;
    o.poolSize = p.poolSize;
    o.beyondSpan = p.beyondSpan;
    o.sinkTokens = p.sinkTokens;
    o.progress = progress("analysis, layer");
    if (p.query >= 0) o.queryRows = {p.query};
    const AnalysisResult r = analyze(*model, tokens, o);
    AnalysisResult compared;
    if (in.withCompare) {
        AnalysisOptions c = o;
        c.pattern = comparePattern;
        c.poolSize = 64;  // its maps are not drawn
        c.queryRows.clear();
        c.progress = progress("compare, layer");
        compared = analyze(*model, tokens, c);
    }
    std::vector<SweepPoint> sweep;
    if (p.sweep) sweep = sweepBoundary(*model, tokens, sparse, progress("sweep, layer passes"));
    std::vector<float> fullLoss;
    if (pattern.boundary() < L) {
        if (p.sweep) fullLoss = sweep.back().tokenLoss;
        else {
            AnalysisOptions full;
            full.pattern = masformerPattern(L, L, LayerSpec::full());
            full.withStats = false;
            full.progress = progress("all-full loss, layer");
            fullLoss = analyze(*model, tokens, full).tokenLoss;
        }
    }

    // 4. Figures with their numbers, index.html and the manifest (engine/report.h).
    in.analysis = &r;
    in.fullLoss = &fullLoss;
    in.sweep = &sweep;
    in.docText = &text;
    in.offsets = &encoding.offsets;
    in.tokenIds = &tokens;
    in.compare = &compared;
    const std::vector<std::string> files = writeReport(in, out, a.force);
    std::printf("wrote %zu files to %s: %zu figures as PNG, SVG and PDF, each with its CSV; index.html; manifest.json\n",
                files.size(), out.c_str(), reportFigures(in).size());
    return 0;
}

}  // namespace spanscope::cli
