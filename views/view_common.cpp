// View base class, UI state helpers and formatting shared by the panels.
#include <imgui.h>

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "views/view.h"

namespace spanscope {

LayerSpec UiState::sparseSpec() const {
    switch (sparseKind) {
        case AttentionKind::Block: return LayerSpec::block(sparseSpan, prevBlock);
        case AttentionKind::SparseK: return LayerSpec::sparseK(64, sparseSpan);
        default: return LayerSpec::window(sparseSpan);
    }
}

LayerPattern UiState::pattern(int numLayers) const {
    return masformerPattern(numLayers, std::clamp(boundary, 0, numLayers), sparseSpec());
}

void View::draw(ViewContext& ctx, float displayW, float displayH) {
    if (!open) return;
    float x, y, w, h;
    defaultRect(x, y, w, h);
    ImGui::SetNextWindowPos(ImVec2(x * displayW, y * displayH), ImGuiCond_FirstUseEver);
    ImGui::SetNextWindowSize(ImVec2(w * displayW, h * displayH), ImGuiCond_FirstUseEver);
    if (ImGui::Begin(name(), &open)) {
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
