// File > Export view figures...: the figures of what the views show, as a report folder
// (engine/report.h) written on a background thread from the immutable snapshot.
//
// What each view shows becomes one figure: Distances → distance_profile; Attention map → the
// selected layer and head over the current map region; Loss → token_loss with all-full; Sweep →
// perplexity_vs_cost when a sweep exists; Cost → cost_table. The manifest's "source" names the
// views and the UI state; its "settings" let `spanscope-cli report --from` regenerate them.
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

// The report of what the views show now. The pointers in the result point into `s`, which the
// caller keeps alive. Throws InputError when there is nothing to export yet.
ReportInput exportInput(const Snapshot& s, const UiState& ui) {
    if (!s.model || !s.document || !s.analysis) throw InputError("nothing to export yet: load a model and a document");
    const AnalysisResult& a = *s.analysis;
    const int L = static_cast<int>(s.model->config.numLayers);
    const int64_t T = static_cast<int64_t>(s.document->tokens.size());
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
    const bool zoomed = a.mapQ0 > 0 || a.mapK0 > 0 || a.mapQ1 < T || a.mapK1 < T;
    nlohmann::json differs = nlohmann::json::array();
    if (zoomed) differs.push_back("attention map region: report --from maps the whole document");
    if (head >= 0) differs.push_back("report --from also draws the head mean and every other head");
    in.source = {{"app", "spanscope"},
                 {"views", {{"Distances", "distance_profile"},
                            {"Attention map", reportFigures(in)[1].name},
                            {"Loss", "token_loss"},
                            {"Sweep", in.withSweep ? "perplexity_vs_cost" : "none (no sweep run)"},
                            {"Cost", "cost_table"}}},
                 {"state", {{"boundary", a.pattern.boundary()}, {"layer", layer}, {"head", head},
                            {"map_region", {a.mapQ0, a.mapQ1, a.mapK0, a.mapK1}}, {"map_zoomed", zoomed},
                            {"query_token", ui.queryToken}, {"analysis_generation", s.analysisGeneration}}},
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
    ReportInput in;
    try {
        in = exportInput(*snap, m_ui);
    } catch (const std::exception& e) {
        m_exportError = e.what();
        return;
    }
    m_export = std::async(std::launch::async, [snap, in = std::move(in), dir, force]() mutable {
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

void GuiApp::drawExportDialog() {
    if (m_exportDialog) {
        ImGui::OpenPopup(kExportTitle);
        m_exportOverwrite = 0;
        m_exportDialog = false;
    }
    if (!ImGui::BeginPopupModal(kExportTitle, nullptr, ImGuiWindowFlags_AlwaysAutoResize)) return;
    bool start = false, force = false;
    if (m_exportOverwrite == 0) {
        ImGui::TextUnformatted("Folder for the figures of the views (PNG, SVG, PDF and CSV), index.html and manifest.json:");
        ImGui::SetNextItemWidth(560);
        if (ImGui::IsWindowAppearing()) ImGui::SetKeyboardFocusHere();
        bool ok = ImGui::InputText("##folder", &m_exportPath, ImGuiInputTextFlags_EnterReturnsTrue);
        ok |= ImGui::Button("Export");
        ImGui::SameLine();
        if (ImGui::Button("Cancel") || ImGui::IsKeyPressed(ImGui::GetKeyIndex(ImGuiKey_Escape))) ImGui::CloseCurrentPopup();
        if (ok && !m_exportPath.empty()) {
            bool planned = false;
            try {
                m_exportOverwrite = existingReportFiles(exportInput(*m_snap, m_ui), m_exportPath).size();
                planned = true;
            } catch (const std::exception& e) {
                m_exportError = e.what();
                ImGui::CloseCurrentPopup();
            }
            start = planned && m_exportOverwrite == 0;
        }
    } else {
        ImGui::Text("%s already holds files of an export. Overwrite %zu files?", m_exportPath.c_str(), m_exportOverwrite);
        start = force = ImGui::Button("Overwrite");
        ImGui::SameLine();
        if (ImGui::Button("Cancel") || ImGui::IsKeyPressed(ImGui::GetKeyIndex(ImGuiKey_Escape))) ImGui::CloseCurrentPopup();
    }
    if (start) {
        startExport(m_exportPath, force);
        ImGui::CloseCurrentPopup();
    }
    ImGui::EndPopup();
}

}  // namespace spanscope
