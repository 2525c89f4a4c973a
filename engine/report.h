// A report: the print figures of one analysis (distance profile, attention maps, per-token loss,
// perplexity against cost, cost table, the tinted document text, the layer stack, and a second
// pattern compared with the first), each as PNG/SVG/PDF with its CSV, plus index.html and
// manifest.json (schema version, both content hashes, every setting). Shared by
// `spanscope-cli report` and the desktop app's "Export view figures...".
//
// Rules: every output path is checked before anything is written; nothing is overwritten unless
// `force`; every file goes through a temporary file renamed into place (atomic_file.h); the
// manifest is written last, so a folder with a manifest is a complete report. Errors are
// InputError naming the file. Plain host data only (no LibTorch, no ImGui); the functions are
// pure and may run on any thread, provided the inputs stay alive and unchanged meanwhile.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/analysis.h"
#include "engine/model_config.h"
#include "engine/view_figures.h"

namespace spanscope {

// One attention map figure: a layer and a head (-1: mean over heads).
struct ReportMap {
    int64_t layer = 0;
    int head = -1;
};

struct ReportInput {
    // Where the numbers came from.
    std::string modelDir, modelHash;  // modelHash: modelWeightsHash(modelDir)
    size_t modelHashedFiles = 0;
    ModelConfig config;
    std::string docPath, docHash;     // docHash: fnv1a64Hex of the document bytes
    size_t docBytes = 0, docTokens = 0;
    std::string pattern;              // text form of the analysed pattern
    std::string device;
    std::string command;              // the command line, or what the app did
    nlohmann::json settings;          // every setting `report --from` needs (cli_report.cpp)
    nlohmann::json source;            // optional: which app views/state the figures show

    // What to draw. `analysis` is required by writeReport (not by the planning functions).
    const AnalysisResult* analysis = nullptr;
    const std::vector<float>* fullLoss = nullptr;  // (T-1) all-full per-token loss; null/empty: none
    std::vector<ReportMap> maps;                   // attention map figures, in this order
    bool withSweep = false;                        // draw perplexity against cost (needs `sweep`)
    const std::vector<SweepPoint>* sweep = nullptr;
    std::string sweepSparse;                       // text form of the sweep's sparse kind
    int currentBoundary = -1;                      // sweep point to highlight; -1: none

    // The Document, Layers and Compare views' figures (view_figures.h). The document text figure
    // needs the document and its tokens: docText, offsets (T byte ranges) and tokenIds (T).
    ViewSelection selection;                       // text window resolved by the caller
    const std::string* docText = nullptr;
    const std::vector<std::pair<uint32_t, uint32_t>>* offsets = nullptr;
    const std::vector<int32_t>* tokenIds = nullptr;
    bool withCompare = false;                      // draw the two patterns side by side (needs `compare`)
    std::string comparePattern;                    // text form of the second pattern
    const AnalysisResult* compare = nullptr;
};

struct ReportFigure {
    std::string name;   // file base name in the output folder
    std::string title;  // what it shows
};

// The figures and the files (relative to the output folder, index.html and manifest.json last)
// that writeReport writes for `in`; needs no analysis.
std::vector<ReportFigure> reportFigures(const ReportInput& in);
std::vector<std::string> reportFiles(const ReportInput& in);
// The files of reportFiles that already exist in outDir (full paths).
std::vector<std::string> existingReportFiles(const ReportInput& in, const std::string& outDir);
// Throws InputError for the first existing output unless `force`.
void checkReportOutputs(const ReportInput& in, const std::string& outDir, bool force);

// Creates outDir (mkdir -p) and writes every file; returns their full paths.
std::vector<std::string> writeReport(const ReportInput& in, const std::string& outDir, bool force);

// FNV-1a 64 over the model's weights (model.safetensors, or every *.safetensors in name order),
// streamed; `hashedFiles` gets how many files it covered.
std::string modelWeightsHash(const std::string& modelDir, size_t* hashedFiles = nullptr);
// mkdir -p with one clear InputError.
void makeDirectories(const std::string& dir);

}  // namespace spanscope
