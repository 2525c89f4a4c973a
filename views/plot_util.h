// Small helpers shared by the plotting panels: axis ticks, colours, robust ranges, head selection.
#pragma once

#include <imgui.h>

#include <string>
#include <vector>

#include "engine/analysis.h"
#include "engine/runner.h"

namespace spanscope {

constexpr ImU32 kAxisColor = IM_COL32(170, 170, 170, 255);
constexpr ImU32 kGridColor = IM_COL32(255, 255, 255, 28);
constexpr ImU32 kSelectedColor = IM_COL32(255, 255, 255, 230);
constexpr ImU32 kContextColor = IM_COL32(230, 90, 90, 220);

// A 1-2-5 tick step giving about targetTicks ticks over range.
double niceStep(double range, int targetTicks);
// Axis label of a token position: 0, 500, 2k, 12.5k, 1.5M.
std::string tickLabel(double v);
// The tokens under the mouse in a plot of `columns` pixel columns over `tokens` tokens, x from
// left to right. When the mouse is over it, opens a tooltip naming those tokens and returns
// true; the caller adds its lines and calls ImGui::EndTooltip().
struct ColumnHover {
    int column = 0;
    int64_t first = 0, end = 0;  // tokens [first, end) drawn in the column
    int64_t token = 0;           // the token exactly under the mouse (a click selects it)
};
bool beginColumnTooltip(bool hovered, const ImVec2& p0, const ImVec2& p1, int columns, int64_t tokens,
                        const DocumentInfo& doc, ColumnHover& out);

// The statistics of one head, or the head mean for head < 0; null without statistics.
const HeadStats* headStatsOf(const LayerAnalysis& la, int head);

}  // namespace spanscope
