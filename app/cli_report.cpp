// spanscope-cli report: the figure set of one analysis (distance profile, attention maps, per-token
// loss, perplexity against cost, cost table), each as PNG/SVG/PDF with its CSV, plus manifest.json
// (every setting and both content hashes) and index.html. `--from manifest.json` regenerates it.
//
// Order matters for the overwrite and interruption rules: the settings are resolved and every
// output path is checked before any work, the output folder's writability is probed before the
// (slow) analysis, and every file is written through a temporary file renamed into place.
#include "app/cli_commands.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>

#include "engine/analysis.h"
#include "engine/analysis_json.h"
#include "engine/atomic_file.h"
#include "engine/document.h"
#include "engine/errors.h"
#include "engine/figures.h"
#include "engine/model.h"
#include "engine/tokenizer.h"

namespace spanscope::cli {
namespace {

constexpr const char* kManifestName = "manifest.json";
constexpr const char* kIndexName = "index.html";

bool pathExists(const std::string& p) {
    struct stat st {};
    return ::lstat(p.c_str(), &st) == 0;
}

bool isDirectory(const std::string& p) {
    struct stat st {};
    return ::stat(p.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

// mkdir -p with one clear error.
void makeDirectories(const std::string& dir) {
    if (isDirectory(dir)) return;
    if (pathExists(dir)) throw InputError(dir + ": exists and is not a folder");
    for (size_t pos = dir.find('/', 1);; pos = dir.find('/', pos + 1)) {
        const std::string part = dir.substr(0, pos);
        if (!part.empty() && !isDirectory(part) && ::mkdir(part.c_str(), 0755) != 0 && errno != EEXIST)
            throw InputError(dir + ": cannot create folder '" + part + "' (" + std::strerror(errno) + ")");
        if (pos == std::string::npos) break;
    }
}

std::string absolutePath(const std::string& p) {
    if (char* real = ::realpath(p.c_str(), nullptr)) {
        std::string s(real);
        std::free(real);
        return s;
    }
    return p;  // does not exist: the loader names it in its error
}

std::string baseName(std::string p) {
    while (p.size() > 1 && p.back() == '/') p.pop_back();
    const size_t slash = p.find_last_of('/');
    return slash == std::string::npos ? p : p.substr(slash + 1);
}

// FNV-1a 64 over the bytes of several files in order, streamed (weights can be gigabytes); the
// same function as fnv1a64Hex for one file.
std::string fnv1a64Files(const std::vector<std::string>& paths) {
    uint64_t h = 1469598103934665603ull;
    std::vector<unsigned char> buf(1 << 20);
    for (const auto& path : paths) {
        const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
        if (fd < 0) throw InputError(path + ": cannot open (" + std::strerror(errno) + ")");
        for (;;) {
            const ssize_t got = ::read(fd, buf.data(), buf.size());
            if (got < 0 && errno == EINTR) continue;
            if (got < 0) {
                const int err = errno;
                ::close(fd);
                throw InputError(path + ": cannot read (" + std::strerror(err) + ")");
            }
            if (got == 0) break;
            for (ssize_t i = 0; i < got; ++i) h = (h ^ buf[static_cast<size_t>(i)]) * 1099511628211ull;
        }
        ::close(fd);
    }
    char out[17];
    std::snprintf(out, sizeof out, "%016llx", static_cast<unsigned long long>(h));
    return out;
}

// The weights a model hash covers: model.safetensors, or every *.safetensors shard in name order.
std::vector<std::string> weightFiles(const std::string& dir) {
    if (pathExists(dir + "/model.safetensors")) return {dir + "/model.safetensors"};
    std::vector<std::string> files;
    if (DIR* d = ::opendir(dir.c_str())) {
        while (dirent* e = ::readdir(d)) {
            const std::string name = e->d_name;
            if (name.size() > 12 && name.compare(name.size() - 12, 12, ".safetensors") == 0) files.push_back(dir + "/" + name);
        }
        ::closedir(d);
    }
    std::sort(files.begin(), files.end());
    if (files.empty()) throw InputError(dir + ": no model.safetensors in the model folder");
    return files;
}

std::string html(const std::string& s) {
    std::string o;
    for (char c : s) {
        switch (c) {
            case '&': o += "&amp;"; break;
            case '<': o += "&lt;"; break;
            case '>': o += "&gt;"; break;
            case '"': o += "&quot;"; break;
            default: o += c;
        }
    }
    return o;
}

// Every setting a report depends on, resolved (no defaults left to chance), so that the manifest
// regenerates the same numbers.
struct ReportPlan {
    std::string modelDir, docPath, pattern, sparse, heads, device;
    bool sweep = false;
    std::vector<int64_t> layers;
    int64_t poolSize = 256, beyondSpan = 0, sinkTokens = 4, maxTokens = 131072;
    std::string expectModelHash, expectDocumentHash;  // from a manifest: must match

    nlohmann::json toJson() const {
        return {{"model_dir", modelDir}, {"document", docPath},     {"pattern", pattern},       {"sweep", sweep},
                {"sparse", sparse},      {"layers", layers},        {"heads", heads},           {"pool", poolSize},
                {"beyond_span", beyondSpan}, {"sink_tokens", sinkTokens}, {"device", device}, {"max_tokens", maxTokens}};
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
    return p;
}

struct FigureEntry {
    std::string name;   // file base name in the output folder
    std::string title;  // what it shows
};

std::vector<FigureEntry> plannedFigures(const ReportPlan& p, const ModelConfig& c) {
    std::vector<FigureEntry> f = {{"distance_profile", "Attention distance profile per layer (head mean)"}};
    char name[64];
    for (int64_t l : p.layers) {
        std::snprintf(name, sizeof name, "attention_map_layer%02lld", static_cast<long long>(l));
        f.push_back({name, "Attention map, layer " + std::to_string(l) + " (head mean)"});
        if (p.heads == "all")
            for (int64_t h = 0; h < c.numHeads; ++h)
                f.push_back({std::string(name) + "_head" + std::to_string(h),
                             "Attention map, layer " + std::to_string(l) + ", head " + std::to_string(h)});
    }
    f.push_back({"token_loss", "Per-token loss along the document"});
    if (p.sweep) f.push_back({"perplexity_vs_cost", "Perplexity against attention cost, boundary sweep l = 0.." +
                                                         std::to_string(c.numLayers)});
    f.push_back({"cost_table", "Attention cost per layer"});
    return f;
}

std::vector<std::string> figureFiles(const FigureEntry& f) {
    std::vector<std::string> files;
    for (const auto& ext : figureFormats()) files.push_back(f.name + "." + ext);
    files.push_back(f.name + ".csv");
    return files;
}

AttentionMapFigure mapFigure(const AnalysisResult& r, int64_t layer, int head) {
    const LayerAnalysis& la = r.layers[static_cast<size_t>(layer)];
    AttentionMapFigure f;
    f.layer = static_cast<int>(layer);
    f.head = head;
    f.spec = la.spec;
    f.q0 = r.mapQ0, f.q1 = r.mapQ1, f.k0 = r.mapK0, f.k1 = r.mapK1;
    f.rows = la.poolRows, f.cols = la.poolCols;
    const size_t cells = static_cast<size_t>(f.rows * f.cols), H = la.heads.size();
    f.values.assign(cells, 0.0f);
    if (head >= 0) {
        std::copy_n(la.pooled.begin() + static_cast<std::ptrdiff_t>(static_cast<size_t>(head) * cells), cells, f.values.begin());
        return f;
    }
    for (size_t i = 0; i < cells; ++i) {
        double sum = 0;
        for (size_t h = 0; h < H; ++h) sum += la.pooled[h * cells + i];
        f.values[i] = static_cast<float>(sum / static_cast<double>(H));
    }
    return f;
}

void writeIndex(const std::string& path, const FigureTitle& t, const std::vector<FigureEntry>& figures,
                const ReportPlan& p, const AnalysisResult& r) {
    std::string h = "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n<title>spanscope report: " +
                    html(t.model + " · " + t.document + " · " + t.pattern) + "</title>\n" +
                    "<style>body{font-family:'DejaVu Sans',sans-serif;color:#222;margin:2em auto;max-width:1500px}"
                    "figure{display:inline-block;vertical-align:top;margin:0 1em 2em 0;max-width:720px}"
                    "img{width:100%;border:1px solid #ddd}td{padding:1px 10px 1px 0}code{background:#f3f3f3}</style>\n"
                    "</head><body>\n<h1>spanscope report</h1>\n<table>\n";
    char buf[160];
    std::snprintf(buf, sizeof buf, "%lld tokens; loss %.4f nats/token, perplexity %.2f; C = %.4f",
                  static_cast<long long>(r.numTokens), r.meanLoss, r.perplexity, r.cost.relativeCost);
    const std::pair<std::string, std::string> rows[] = {
        {"model", p.modelDir}, {"document", p.docPath}, {"pattern", p.pattern}, {"result", buf}, {"device", p.device}};
    for (const auto& [k, v] : rows) h += "<tr><td>" + k + "</td><td>" + html(v) + "</td></tr>\n";
    h += "</table>\n<p>Every setting and both content hashes are in <a href=\"manifest.json\">manifest.json</a>; "
         "<code>spanscope-cli report --from manifest.json --out DIR</code> regenerates the figures.</p>\n";
    for (const auto& f : figures) {
        h += "<figure><a href=\"" + f.name + ".svg\"><img src=\"" + f.name + ".png\" alt=\"" + html(f.title) +
             "\"></a>\n<figcaption>" + html(f.title) + " — ";
        for (const auto& file : figureFiles(f)) {
            const std::string ext = file.substr(file.rfind('.') + 1);
            h += "<a href=\"" + file + "\">" + ext + "</a> ";
        }
        h += "</figcaption></figure>\n";
    }
    h += "</body></html>\n";
    writeFileAtomic(path, h);
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

    std::string out = a.out;
    while (out.size() > 1 && out.back() == '/') out.pop_back();
    const std::vector<FigureEntry> figures = plannedFigures(p, config);
    std::vector<std::string> files;
    for (const auto& f : figures)
        for (const auto& file : figureFiles(f)) files.push_back(file);
    files.push_back(kIndexName);
    files.push_back(kManifestName);
    if (!a.force)
        for (const auto& file : files)
            if (pathExists(out + "/" + file)) throw InputError(out + "/" + file + ": already exists (--force overwrites)");

    // 2. Inputs, checked against the manifest when regenerating; then the output folder.
    const std::string text = loadDocument(p.docPath);
    const std::string docHash = fnv1a64Hex(text);
    const std::string modelHash = fnv1a64Files(weightFiles(p.modelDir));
    if (!p.expectDocumentHash.empty() && docHash != p.expectDocumentHash)
        throw InputError(p.docPath + ": document changed since the manifest was written (fnv1a64 " + docHash + ", manifest " +
                         p.expectDocumentHash + ")");
    if (!p.expectModelHash.empty() && modelHash != p.expectModelHash)
        throw InputError(p.modelDir + ": model weights changed since the manifest was written (fnv1a64 " + modelHash +
                         ", manifest " + p.expectModelHash + ")");
    makeDirectories(out);
    checkWritable(out + "/" + kManifestName);  // before the slow part: model load and analysis
    auto model = Model::load(p.modelDir, p.device);
    const std::vector<int32_t> tokens = model->tokenizer().encode(text).ids;
    checkTokenCount(static_cast<int64_t>(tokens.size()), p.maxTokens, p.docPath);

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
    const AnalysisResult r = analyze(*model, tokens, o);
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

    // 4. Figures and their numbers.
    FigureTitle title{"", baseName(p.modelDir), baseName(p.docPath), p.pattern};
    auto titled = [&](const FigureEntry& f) { FigureTitle t = title; t.what = f.title; return t; };
    size_t next = 0;
    auto emit = [&](const auto& figure) {
        const std::string base = out + "/" + figures[next++].name;
        writeFigure(base, figure);
        writeFileAtomic(base + ".csv", figureCsv(figure));
    };
    DistanceProfileFigure dist{titled(figures[next]), {}, {}};
    for (const auto& la : r.layers) dist.specs.push_back(la.spec), dist.binMass.push_back(la.headMean.binMass);
    emit(dist);
    for (int64_t l : p.layers) {
        AttentionMapFigure m = mapFigure(r, l, -1);
        m.title = titled(figures[next]);
        emit(m);
        if (p.heads == "all")
            for (int h = 0; h < static_cast<int>(config.numHeads); ++h) {
                AttentionMapFigure mh = mapFigure(r, l, h);
                mh.title = titled(figures[next]);
                emit(mh);
            }
    }
    emit(TokenLossFigure{titled(figures[next]), r.tokenLoss, fullLoss, 0});
    if (p.sweep) {
        SweepFigure s{titled(figures[next]), sparse.text(), {}, -1};
        for (const auto& sp : sweep) s.points.push_back({sp.boundary, sp.relativeCost, sp.meanLoss, sp.perplexity});
        if (pattern == masformerPattern(L, pattern.boundary(), sparse)) s.currentBoundary = pattern.boundary();
        emit(s);
    }
    emit(CostTableFigure{titled(figures[next]), pattern, r.cost, r.numTokens, config.numHeads, config.headDim()});

    // 5. index.html, then the manifest last: a folder with a manifest is a complete report.
    writeIndex(out + "/" + kIndexName, title, figures, p, r);
    nlohmann::json figureList = nlohmann::json::array();
    for (const auto& f : figures) figureList.push_back({{"name", f.name}, {"title", f.title}, {"files", figureFiles(f)}});
    nlohmann::json manifest = {
        {"schema_version", kJsonSchemaVersion},
        {"spanscope_version", kSpanscopeVersion},
        {"kind", "report"},
        {"command", a.run.commandLine},
        {"model", {{"dir", p.modelDir}, {"fnv1a64", modelHash}, {"hashed_files", weightFiles(p.modelDir).size()},
                   {"config", config.toJson()}}},
        {"document", {{"path", p.docPath}, {"fnv1a64", docHash}, {"bytes", text.size()}, {"tokens", tokens.size()}}},
        {"pattern", p.pattern},
        {"settings", p.toJson()},
        {"results", {{"mean_loss", r.meanLoss}, {"perplexity", r.perplexity}, {"relative_cost", r.cost.relativeCost}}},
        {"figures", figureList},
        {"files", files}};
    writeFileAtomic(out + "/" + kManifestName, manifest.dump(1) + "\n");
    std::printf("wrote %zu files to %s: %zu figures as PNG, SVG and PDF, each with its CSV; %s; %s\n", files.size(),
                out.c_str(), figures.size(), kIndexName, kManifestName);
    return 0;
}

}  // namespace spanscope::cli
