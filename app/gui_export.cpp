// File > Export view figures...: the figures of what the views show, as a report folder
// (engine/report.h) written on a background thread from the immutable snapshot.
//
// What each view shows becomes a figure: Distances → distance_profile; Attention map → the
// selected layer and head over the current map region; Loss → token_loss with all-full; Sweep →
// perplexity_vs_cost when a sweep exists; Cost → cost_table; Document → document_text (the chosen
// tint over a window of tokens: the export cannot see the view's scroll position, so it takes
// kDefaultTextTokens around the query token, or from the start); Layers → layer_stack; Compare →
// compare_layers and compare_loss when a comparison has been run. Help shows no data: no figure.
// The manifest's "source" names the views and the UI state; its "settings" let
// `spanscope-cli report --from` regenerate them, and "from_differs" says where it cannot.
#include <imgui.h>
#include <imgui_stdlib.h>

#include <algorithm>
#include <cstdlib>
#include <exception>

#include "app/gui_app.h"
#include "engine/errors.h"
#include "engine/report.h"

namespace spanscope {
namespace {

constexpr const char* kExportTitle = "Export view figures";

std::string absolutePath(const std::string& p) {
    if (char* real = ::realpath(p.c_str(), nullptr)) {
        std::string s(real);
        std::free(real);
        return s;
    }
    return p;
}

TokenTint tokenTint(DocumentTint t) {
    switch (t) {
        case DocumentTint::DeltaLoss: return TokenTint::DeltaLoss;
        case DocumentTint::Attention: return TokenTint::Attention;
        case DocumentTint::BeyondSpan: return TokenTint::BeyondSpan;
        case DocumentTint::Selections: return TokenTint::Selections;
        default: return TokenTint::Loss;
    }
}

// The Compare view's second analysis, when it is of the document and model the views show.
std::shared_ptr<const AnalysisResult> comparedAnalysis(const Runner& compareRunner, const std::string& submitted,
                                                       const Snapshot& s) {
    auto c = compareRunner.latest()->analysis;
    if (!c || submitted.empty() || !s.analysis || c->numTokens != s.analysis->numTokens ||
        c->layers.size() != s.analysis->layers.size())
        return nullptr;
    return c;
}

// The report of what the views show now. The pointers in the result point into `s` and `compare`,
// which the caller keeps alive. Throws InputError when there is nothing to export yet.
ReportInput exportInput(const Snapshot& s, const UiState& ui, const AnalysisResult* compare) {
    if (!s.model || !s.document || !s.analysis) throw InputError("nothing to export yet: load a model and a document");
    const AnalysisResult& a = *s.analysis;
    const int L = static_cast<int>(s.model->config.numLayers);
    const int64_t T = static_cast<int64_t>(s.document->tokens.size());
    if (a.numTokens != T) throw InputError("the analysis of this document is not finished yet: export when it is");
    ReportInput in;
    in.modelDir = absolutePath(s.model->dir);
    in.config = s.model->config;
    in.docPath = absolutePath(s.document->path);
    in.docHash = s.document->hash;
    in.docBytes = s.document->text.size();
    in.docTokens = s.document->tokens.size();
    in.pattern = a.pattern.text();
    in.device = s.model->device;
    in.command = "spanscope (desktop app): File > Export view figures";
    const int layer = std::clamp(ui.layer, 0, std::max(0, static_cast<int>(a.layers.size()) - 1));
    const int head = ui.head < s.model->config.numHeads ? ui.head : -1;
    in.analysis = &a;
    in.maps = {{layer, head}};
    if (a.pattern.boundary() < L && s.baseline) in.fullLoss = &s.baseline->tokenLoss;
    const LayerSpec sparse = s.sweep ? s.sweepSparse : ui.sparseSpec();
    if (s.sweep && !s.sweep->empty()) {
        in.withSweep = true;
        in.sweep = s.sweep.get();
        in.sweepSparse = s.sweepSparse.text();
        if (a.pattern == masformerPattern(L, a.pattern.boundary(), s.sweepSparse)) in.currentBoundary = a.pattern.boundary();
    }
    // The settings of `spanscope-cli report` (cli_report.cpp, ReportPlan) that draw the same figures.
    in.settings = {{"model_dir", in.modelDir},   {"document", in.docPath},
                   {"pattern", in.pattern},      {"sweep", in.withSweep},
                   {"sparse", sparse.kind == AttentionKind::Full ? "window:512" : sparse.text()},
                   {"layers", {layer}},          {"heads", head < 0 ? "mean" : "all"},
                   {"pool", s.lastRequest.poolSize}, {"beyond_span", s.lastRequest.beyondSpan},
                   {"sink_tokens", a.sinkTokens}, {"device", in.device},
                   {"max_tokens", std::max<int64_t>(131072, T)}};
    // Document, Layers, Compare.
    // The document window: the tokens the Document view shows, when it is drawn and shows the query
    // token (or there is none); else 400 tokens around the query.
    const int64_t query = ui.queryToken < T ? ui.queryToken : -1;
    const bool seen = ui.documentFirstVisible >= 0 && ui.documentLastVisible >= ui.documentFirstVisible &&
                      (query < 0 || (query >= ui.documentFirstVisible && query <= ui.documentLastVisible));
    in.selection = {tokenTint(ui.tint), layer, head, query,
                    seen ? ui.documentFirstVisible : -1, seen ? ui.documentLastVisible - ui.documentFirstVisible + 1 : 0};
    resolveTextWindow(in.selection, T);
    in.docText = &s.document->text;
    in.offsets = &s.document->offsets;
    in.tokenIds = &s.document->tokens;
    if (compare) {
        in.withCompare = true;
        in.compare = compare;
        in.comparePattern = compare->pattern.text();
    }
    const ViewSelection& sel = in.selection;
    in.settings.update({{"tint", tokenTintName(sel.tint)}, {"select_layer", layer}, {"select_head", head},
                        {"query_token", sel.query}, {"text_first", sel.textFirst}, {"text_tokens", sel.textCount},
                        {"compare", in.comparePattern}});
    const bool zoomed = a.mapQ0 > 0 || a.mapK0 > 0 || a.mapQ1 < T || a.mapK1 < T;
    nlohmann::json differs = nlohmann::json::array();
    if (zoomed) differs.push_back("attention map region: report --from maps the whole document");
    if (head >= 0) differs.push_back("report --from also draws the head mean and every other head");
    if (sel.tint == TokenTint::Attention && sel.query >= 0 &&
        std::find(a.queryRows.begin(), a.queryRows.end(), sel.query) == a.queryRows.end())
        differs.push_back("document_text: the query's attention row was not computed yet; report --from computes it");
    if (sel.tint == TokenTint::DeltaLoss && !in.fullLoss && a.pattern.boundary() < L)
        differs.push_back("document_text: the all-full baseline was not computed yet; report --from computes it");
    const std::string figureList = compare ? "compare_layers, compare_loss" : "none (no comparison run)";
    in.source = {{"app", "spanscope"},
                 {"views", {{"Distances", "distance_profile"},
                            {"Attention map", reportFigures(in)[1].name},
                            {"Loss", "token_loss"},
                            {"Sweep", in.withSweep ? "perplexity_vs_cost" : "none (no sweep run)"},
                            {"Cost", "cost_table"},
                            {"Document", "document_text"},
                            {"Layers", "layer_stack"},
                            {"Compare", figureList},
                            {"Help", "none (shows no data)"}}},
                 {"state", {{"boundary", a.pattern.boundary()}, {"layer", layer}, {"head", head},
                            {"map_region", {a.mapQ0, a.mapQ1, a.mapK0, a.mapK1}}, {"map_zoomed", zoomed},
                            {"query_token", ui.queryToken}, {"analysis_generation", s.analysisGeneration},
                            {"document_window", "tokens " + std::to_string(sel.textFirst) + " to " +
                                                    std::to_string(sel.textFirst + sel.textCount - 1) +
                                                    (seen ? " (what the Document view showed)"
                                                          : " (around the query token, which the Document view did not "
                                                            "show, else from the start)")}}},
                 {"from_differs", differs}};
    return in;
}

}  // namespace

void GuiApp::startExport(const std::string& dir, bool force) {
    if (exporting()) {
        m_exportError = "an export is already running";
        return;
    }
    m_exportDir = dir;
    m_exportError.clear();
    m_exportFiles.clear();
    // What the views drew this frame; the worker never changes a published snapshot.
    std::shared_ptr<const Snapshot> snap = m_snap ? m_snap : m_runner.latest();
    std::shared_ptr<const AnalysisResult> compare = comparedAnalysis(m_compareRunner, m_compareSubmitted, *snap);
    ReportInput in;
    try {
        in = exportInput(*snap, m_ui, compare.get());
    } catch (const std::exception& e) {
        m_exportError = e.what();
        return;
    }
    m_export = std::async(std::launch::async, [snap, compare, in = std::move(in), dir, force]() mutable {
        ExportOutcome r{dir, {}, {}};
        try {
            const auto existing = force ? std::vector<std::string>{} : existingReportFiles(in, dir);
            if (!existing.empty())
                throw InputError(existing.front() + ": already exists (" + std::to_string(existing.size()) +
                                 " files of the export would be overwritten; the dialog asks, export-force overwrites)");
            in.modelHash = modelWeightsHash(in.modelDir, &in.modelHashedFiles);
            r.files = writeReport(in, dir, force);
        } catch (const std::exception& e) {
            r.error = e.what();
        }
        return r;
    });
}

void GuiApp::pollExport() {
    if (!m_export.valid() || m_export.wait_for(std::chrono::seconds(0)) != std::future_status::ready) return;
    ExportOutcome r = m_export.get();
    m_exportDir = r.dir;
    m_exportFiles = std::move(r.files);
    m_exportError = std::move(r.error);
}

void GuiApp::drawExportStatus() {
    if (exporting()) {
        ImGui::SameLine(0, 24);
        ImGui::TextUnformatted("exporting...");
    } else if (!m_exportError.empty()) {
        ImGui::SameLine(0, 24);
        ImGui::TextColored(ImVec4(1.0f, 0.45f, 0.4f, 1.0f), "export failed: %s", m_exportError.c_str());
    } else if (!m_exportFiles.empty()) {
        ImGui::SameLine(0, 24);
        ImGui::Text("exported %zu files to %s", m_exportFiles.size(), m_exportDir.c_str());
    }
}

void GuiApp::pressExportDialog(const std::string& dir) {
    m_exportPath = dir;
    m_exportDialog = true;
    m_exportPress = ExportPress::Export;
}

bool GuiApp::answerExportOverwrite(bool overwrite) {
    if (!m_exportDialogOpen || m_exportOverwrite == 0) return false;
    m_exportPress = overwrite ? ExportPress::Overwrite : ExportPress::Cancel;
    return true;
}

void GuiApp::drawExportDialog() {
    if (m_exportDialog) {
        ImGui::OpenPopup(kExportTitle);
        m_exportOverwrite = 0;
        m_exportDialog = false;
    }
    m_exportDialogOpen = ImGui::BeginPopupModal(kExportTitle, nullptr, ImGuiWindowFlags_AlwaysAutoResize);
    if (!m_exportDialogOpen) return;
    // A button the script pressed counts as a click on it, this frame.
    const ExportPress press = m_exportPress;
    m_exportPress = ExportPress::None;
    bool start = false, force = false, close = false;
    if (m_exportOverwrite == 0) {
        ImGui::TextUnformatted("Folder for the figures of the views (PNG, SVG, PDF and CSV), index.html and manifest.json:");
        ImGui::SetNextItemWidth(560);
        if (ImGui::IsWindowAppearing()) ImGui::SetKeyboardFocusHere();
        bool ok = ImGui::InputText("##folder", &m_exportPath, ImGuiInputTextFlags_EnterReturnsTrue);
        ok |= ImGui::Button("Export") || press == ExportPress::Export;
        ImGui::SameLine();
        close = ImGui::Button("Cancel") || ImGui::IsKeyPressed(ImGui::GetKeyIndex(ImGuiKey_Escape));
        if (ok && !m_exportPath.empty()) {
            try {
                m_exportOverwrite = existingReportFiles(
                    exportInput(*m_snap, m_ui, comparedAnalysis(m_compareRunner, m_compareSubmitted, *m_snap).get()),
                    m_exportPath).size();
                start = m_exportOverwrite == 0;
            } catch (const std::exception& e) {
                m_exportError = e.what();
                close = true;
            }
        }
    } else {
        ImGui::Text("%s already holds files of an export. Overwrite %zu files?", m_exportPath.c_str(), m_exportOverwrite);
        start = force = ImGui::Button("Overwrite") || press == ExportPress::Overwrite;
        ImGui::SameLine();
        close = ImGui::Button("Cancel") || press == ExportPress::Cancel ||
                ImGui::IsKeyPressed(ImGui::GetKeyIndex(ImGuiKey_Escape));
    }
    if (start) {
        startExport(m_exportPath, force);
        close = true;
    }
    if (close) {
        ImGui::CloseCurrentPopup();
        m_exportOverwrite = 0;
        m_exportDialogOpen = false;
    }
    ImGui::EndPopup();
}

}  // namespace spanscope
