// The report writer shared by `spanscope-cli report` and the app's export (report.h).
#include "engine/report.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include "engine/analysis_json.h"
#include "engine/atomic_file.h"
#include "engine/errors.h"
#include "engine/figures.h"

namespace spanscope {
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

std::string baseName(std::string p) {
    while (p.size() > 1 && p.back() == '/') p.pop_back();
    const size_t slash = p.find_last_of('/');
    return slash == std::string::npos ? p : p.substr(slash + 1);
}

std::string trimSlashes(std::string p) {
    while (p.size() > 1 && p.back() == '/') p.pop_back();
    return p;
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

std::vector<std::string> figureFiles(const ReportFigure& f) {
    std::vector<std::string> files;
    for (const auto& ext : figureFormats()) files.push_back(f.name + "." + ext);
    files.push_back(f.name + ".csv");
    return files;
}

AttentionMapFigure mapFigure(const AnalysisResult& r, int64_t layer, int head) {
    if (layer < 0 || layer >= static_cast<int64_t>(r.layers.size()))
        throw InputError("report: layer " + std::to_string(layer) + " is not in the analysis");
    const LayerAnalysis& la = r.layers[static_cast<size_t>(layer)];
    AttentionMapFigure f;
    f.layer = static_cast<int>(layer);
    f.head = head;
    f.spec = la.spec;
    f.q0 = r.mapQ0, f.q1 = r.mapQ1, f.k0 = r.mapK0, f.k1 = r.mapK1;
    f.rows = la.poolRows, f.cols = la.poolCols;
    const size_t cells = static_cast<size_t>(f.rows * f.cols), H = la.heads.size();
    if (H == 0 || la.pooled.size() < H * cells) throw InputError("report: the analysis has no attention maps");
    if (head >= static_cast<int>(H)) throw InputError("report: head " + std::to_string(head) + " is not in the analysis");
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

std::string documentTitle(const ViewSelection& s) {
    switch (s.tint) {
        case TokenTint::Loss: return "Document tinted by per-token loss";
        case TokenTint::DeltaLoss: return "Document tinted by loss minus all-full attention";
        case TokenTint::Attention:
            if (s.query < 0) return "Document tinted by the attention of a query token (none chosen)";
            return "Document tinted by the attention of token " + std::to_string(s.query) + ", layer " +
                   std::to_string(s.layer) + (s.head < 0 ? " (head mean)" : ", head " + std::to_string(s.head));
        case TokenTint::BeyondSpan: return "Document tinted by attention mass beyond the span, layer " + std::to_string(s.layer);
        case TokenTint::Selections:
            if (s.query < 0) return "Document tinted by how often SparseK selected each token, layer " + std::to_string(s.layer);
            return "Document tinted by the keys token " + std::to_string(s.query) + " selected (SparseK mask), layer " +
                   std::to_string(s.layer);
    }
    return "Document";
}

void writeIndex(const std::string& path, const FigureTitle& t, const std::vector<ReportFigure>& figures,
                const ReportInput& in, const AnalysisResult& r) {
    std::string h = "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n<title>spanscope report: " +
                    html(t.model + " · " + t.document + " · " + t.pattern) + "</title>\n" +
                    "<style>body{font-family:'DejaVu Sans',sans-serif;color:#222;margin:2em auto;max-width:1500px}"
                    "figure{display:inline-block;vertical-align:top;margin:0 1em 2em 0;max-width:720px}"
                    "img{width:100%;border:1px solid #ddd}td{padding:1px 10px 1px 0}code{background:#f3f3f3}</style>\n"
                    "</head><body>\n<h1>spanscope report</h1>\n<table>\n";
    char buf[160];
    std::snprintf(buf, sizeof buf, "%lld tokens; loss %.4f nats/token, perplexity %.2f; C = %.4f",
                  static_cast<long long>(r.numTokens), r.meanLoss, r.perplexity, r.cost.relativeCost);
    std::vector<std::pair<std::string, std::string>> rows = {
        {"model", in.modelDir}, {"document", in.docPath}, {"pattern", in.pattern}, {"result", buf}, {"device", in.device}};
    if (in.withCompare) rows.insert(rows.begin() + 3, {"compared with", in.comparePattern});
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

std::vector<ReportFigure> reportFigures(const ReportInput& in) {
    std::vector<ReportFigure> f = {{"distance_profile", "Attention distance profile per layer (head mean)"}};
    char name[64];
    for (const ReportMap& m : in.maps) {
        std::snprintf(name, sizeof name, "attention_map_layer%02lld", static_cast<long long>(m.layer));
        if (m.head < 0) f.push_back({name, "Attention map, layer " + std::to_string(m.layer) + " (head mean)"});
        else
            f.push_back({std::string(name) + "_head" + std::to_string(m.head),
                         "Attention map, layer " + std::to_string(m.layer) + ", head " + std::to_string(m.head)});
    }
    f.push_back({"token_loss", "Per-token loss along the document"});
    if (in.withSweep)
        f.push_back({"perplexity_vs_cost",
                     "Perplexity against attention cost, boundary sweep l = 0.." + std::to_string(in.config.numLayers)});
    f.push_back({"cost_table", "Attention cost per layer"});
    f.push_back({"document_text", documentTitle(in.selection)});
    f.push_back({"layer_stack", in.selection.head < 0 ? "Layer stack: pattern and attention statistics (head mean)"
                                                      : "Layer stack: pattern and attention statistics, head " +
                                                            std::to_string(in.selection.head)});
    if (in.withCompare) {
        f.push_back({"compare_layers", "Compare: " + in.pattern + " against " + in.comparePattern});
        f.push_back({"compare_loss", "Compare: per-token loss difference, " + in.comparePattern + " minus " + in.pattern});
    }
    return f;
}

std::vector<std::string> reportFiles(const ReportInput& in) {
    std::vector<std::string> files;
    for (const auto& f : reportFigures(in))
        for (const auto& file : figureFiles(f)) files.push_back(file);
    files.push_back(kIndexName);
    files.push_back(kManifestName);
    return files;
}

std::vector<std::string> existingReportFiles(const ReportInput& in, const std::string& outDir) {
    const std::string out = trimSlashes(outDir);
    std::vector<std::string> existing;
    for (const auto& file : reportFiles(in))
        if (pathExists(out + "/" + file)) existing.push_back(out + "/" + file);
    return existing;
}

void checkReportOutputs(const ReportInput& in, const std::string& outDir, bool force) {
    if (force) return;
    const auto existing = existingReportFiles(in, outDir);
    if (!existing.empty()) throw InputError(existing.front() + ": already exists (--force overwrites)");
}

void makeDirectories(const std::string& dir) {
    if (dir.empty()) throw InputError("no output folder given");
    if (isDirectory(dir)) return;
    if (pathExists(dir)) throw InputError(dir + ": exists and is not a folder");
    for (size_t pos = dir.find('/', 1);; pos = dir.find('/', pos + 1)) {
        const std::string part = dir.substr(0, pos);
        if (!part.empty() && !isDirectory(part) && ::mkdir(part.c_str(), 0755) != 0 && errno != EEXIST)
            throw InputError(dir + ": cannot create folder '" + part + "' (" + std::strerror(errno) + ")");
        if (pos == std::string::npos) break;
    }
}

std::string modelWeightsHash(const std::string& modelDir, size_t* hashedFiles) {
    const std::vector<std::string> paths = weightFiles(modelDir);
    if (hashedFiles) *hashedFiles = paths.size();
    uint64_t h = 1469598103934665603ull;  // the same FNV-1a 64 as fnv1a64Hex, streamed
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

std::vector<std::string> writeReport(const ReportInput& in, const std::string& outDir, bool force) {
    if (!in.analysis) throw InputError("report: no analysis to draw");
    if (in.withSweep && (!in.sweep || in.sweep->empty())) throw InputError("report: no boundary sweep to draw");
    if (!in.docText || !in.offsets || !in.tokenIds) throw InputError("report: no document text to draw");
    if (in.withCompare && !in.compare) throw InputError("report: no second pattern to compare");
    const AnalysisResult& r = *in.analysis;
    const std::string out = trimSlashes(outDir);
    const std::vector<ReportFigure> figures = reportFigures(in);
    const std::vector<std::string> files = reportFiles(in);
    checkReportOutputs(in, out, force);
    makeDirectories(out);
    checkWritable(out + "/" + kManifestName);

    FigureTitle title{"", baseName(in.modelDir), baseName(in.docPath), in.pattern};
    auto titled = [&](const ReportFigure& f) { FigureTitle t = title; t.what = f.title; return t; };
    size_t next = 0;
    auto emit = [&](auto&& figure) {
        figure.title = titled(figures[next]);
        const std::string base = out + "/" + figures[next++].name;
        writeFigure(base, figure);
        writeFileAtomic(base + ".csv", figureCsv(figure));
    };
    DistanceProfileFigure dist;
    for (const auto& la : r.layers) dist.specs.push_back(la.spec), dist.binMass.push_back(la.headMean.binMass);
    emit(dist);
    for (const ReportMap& m : in.maps) emit(mapFigure(r, m.layer, m.head));
    emit(TokenLossFigure{{}, r.tokenLoss, in.fullLoss ? *in.fullLoss : std::vector<float>{}, 0});
    if (in.withSweep) {
        SweepFigure s{{}, in.sweepSparse, {}, in.currentBoundary};
        for (const auto& sp : *in.sweep) s.points.push_back({sp.boundary, sp.relativeCost, sp.meanLoss, sp.perplexity});
        emit(s);
    }
    emit(CostTableFigure{{}, r.pattern, r.cost, r.numTokens, in.config.numHeads, in.config.headDim()});
    emit(documentTextFigure(r, in.fullLoss, *in.docText, *in.offsets, *in.tokenIds, in.selection));
    emit(layerStackFigure(r, in.selection));
    if (in.withCompare) {
        // The title's pattern names both.
        const std::string both = in.pattern + "  vs  " + in.comparePattern;
        CompareLayersFigure layers = compareLayersFigure(r, *in.compare, in.selection.head, in.config.maxPositions);
        CompareLossFigure loss = compareLossFigure(r, *in.compare, in.config.maxPositions);
        title.pattern = both;
        emit(layers);
        emit(loss);
        title.pattern = in.pattern;
    }

    // index.html, then the manifest last: a folder with a manifest is a complete report.
    writeIndex(out + "/" + kIndexName, title, figures, in, r);
    nlohmann::json figureList = nlohmann::json::array();
    for (const auto& f : figures) figureList.push_back({{"name", f.name}, {"title", f.title}, {"files", figureFiles(f)}});
    nlohmann::json manifest = {
        {"schema_version", kJsonSchemaVersion},
        {"spanscope_version", kSpanscopeVersion},
        {"kind", "report"},
        {"command", in.command},
        {"model", {{"dir", in.modelDir}, {"fnv1a64", in.modelHash}, {"hashed_files", in.modelHashedFiles},
                   {"config", in.config.toJson()}}},
        {"document", {{"path", in.docPath}, {"fnv1a64", in.docHash}, {"bytes", in.docBytes}, {"tokens", in.docTokens}}},
        {"pattern", in.pattern},
        {"settings", in.settings},
        {"results", {{"mean_loss", r.meanLoss}, {"perplexity", r.perplexity}, {"relative_cost", r.cost.relativeCost}}},
        {"figures", figureList},
        {"files", files}};
    if (!in.source.is_null()) manifest["source"] = in.source;
    writeFileAtomic(out + "/" + kManifestName, manifest.dump(1) + "\n");
    std::vector<std::string> written;
    for (const auto& f : files) written.push_back(out + "/" + f);
    return written;
}

}  // namespace spanscope
