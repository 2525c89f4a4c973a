// Help: what spanscope shows and the keyboard shortcuts (the app handles the keys).
#include <imgui.h>

#include "views/views_list.h"

namespace spanscope {
namespace {

constexpr const char* kShortcuts[][2] = {
    {"Ctrl+O", "open a document"},         {"Ctrl+M", "open a model folder"},
    {"Up / Down", "move the boundary l"},  {"Left / Right", "previous / next layer"},
    {"H", "next head (then head mean)"},   {"T", "next document tint"},
    {"L", "log / linear map colour"},      {"R", "reset the map zoom"},
    {"S", "run the boundary sweep"},       {"Esc", "clear the selected token"},
    {"F1", "this help"},                   {"Ctrl+Q", "quit"},
};

class HelpView : public View {
public:
    HelpView() { open = false; }
    const char* name() const override { return "Help"; }
    void defaultRect(float& x, float& y, float& w, float& h) const override { x = 0.3f; y = 0.2f; w = 0.4f; h = 0.5f; }
    void drawContent(ViewContext&) override {
        ImGui::TextWrapped("spanscope runs a mixed-attention-span model (MASFormer: full attention in the bottom l "
                           "layers, window or block attention above) over a document and shows how far each layer "
                           "attends, what the sparse layers drop, and what it costs. Drag the orange boundary in "
                           "Layers to change l; every change re-runs the analysis in the background.");
        ImGui::Separator();
        if (ImGui::BeginTable("keys", 2, ImGuiTableFlags_RowBg)) {
            for (const auto& k : kShortcuts) {
                ImGui::TableNextRow();
                ImGui::TableNextColumn();
                ImGui::TextUnformatted(k[0]);
                ImGui::TableNextColumn();
                ImGui::TextUnformatted(k[1]);
            }
            ImGui::EndTable();
        }
        ImGui::Separator();
        ImGui::TextWrapped("Drop a model folder or a UTF-8 text file onto the window to open it. The attention map "
                           "zooms with the mouse wheel down to exact token cells.");
    }
};

}  // namespace

std::unique_ptr<View> makeHelpView() { return std::make_unique<HelpView>(); }

}  // namespace spanscope
