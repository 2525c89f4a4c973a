// View base class, UI state helpers and formatting shared by the panels.
#include <imgui.h>
#include <imgui_internal.h>

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "views/view.h"

namespace spanscope {

LayerSpec UiState::sparseSpec() const {
    switch (sparseKind) {
        case AttentionKind::Block: return LayerSpec::block(sparseSpan, prevBlock);
        case AttentionKind::SparseK: return LayerSpec::sparseK(sparseTopK, sparseSpan);
        default: return LayerSpec::window(sparseSpan);
    }
}

LayerPattern UiState::pattern(int numLayers) const {
    return masformerPattern(numLayers, std::clamp(boundary, 0, numLayers), sparseSpec());
}

namespace {

// Whether a view window overlapped another window (not a popup, menu or tooltip: those are drawn
// on top with their own background) in the last frame; true before its first frame.
bool overlapsAnotherWindow(const char* name) {
    ImGuiWindow* self = ImGui::FindWindowByName(name);
    if (!self || !self->WasActive) return true;
    const ImRect r = self->Rect();
    constexpr ImGuiWindowFlags kOnTop = ImGuiWindowFlags_ChildWindow | ImGuiWindowFlags_Tooltip | ImGuiWindowFlags_Popup;
    for (ImGuiWindow* w : GImGui->Windows)
        if (w != self && w->WasActive && !(w->Flags & kOnTop) && w->Rect().Overlaps(r)) return true;
    return false;
}

}  // namespace

void View::draw(ViewContext& ctx, float displayW, float displayH) {
    if (!open) return;
    float x, y, w, h;
    defaultRect(x, y, w, h);
    ImGui::SetNextWindowPos(ImVec2(x * displayW, y * displayH), ImGuiCond_FirstUseEver);
    ImGui::SetNextWindowSize(ImVec2(w * displayW, h * displayH), ImGuiCond_FirstUseEver);
    // The screen is cleared to the window background colour (GuiApp::frame), so a view alone on
    // its part of the screen need not fill its background: with a software rasteriser (Mesa
    // llvmpipe under Xvfb) those fills are about half the cost of a frame.
    const ImGuiWindowFlags flags = overlapsAnotherWindow(name()) ? 0 : ImGuiWindowFlags_NoBackground;
    if (ImGui::Begin(name(), &open, flags)) {
        if (!ctx.snap.model || !ctx.snap.document)
            ImGui::TextDisabled("%s", !ctx.snap.model ? "Open a model folder to begin (File > Open model, or drop it here)."
                                                      : "Load a document to begin (File > Open document, or drop a text file here).");
        else
            drawContent(ctx);
    }
    ImGui::End();
}

bool View::requireAnalysis(const ViewContext& ctx) {
    if (ctx.snap.analysis) return true;
    if (ctx.snap.busy) ImGui::TextDisabled("Analysing... %s", ctx.snap.task.c_str());
    else ImGui::TextDisabled("No analysis yet.");
    return false;
}

std::string tokenLabel(const DocumentInfo& doc, int64_t token) {
    if (token < 0 || token >= static_cast<int64_t>(doc.offsets.size())) return "";
    auto [b, e] = doc.offsets[static_cast<size_t>(token)];
    std::string out;
    for (uint32_t i = b; i < e && i < doc.text.size(); ++i) {
        char c = doc.text[i];
        if (c == '\n') out += "\\n";
        else if (c == '\t') out += "\\t";
        else out += c;
    }
    return out;
}

}  // namespace spanscope
