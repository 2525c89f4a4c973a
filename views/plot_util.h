// Small helpers shared by the plotting panels: axis ticks, colours, robust ranges, head selection.
#pragma once

#include <imgui.h>

#include <string>
#include <vector>

#include "engine/analysis.h"

namespace spanscope {

constexpr ImU32 kAxisColor = IM_COL32(170, 170, 170, 255);
constexpr ImU32 kGridColor = IM_COL32(255, 255, 255, 28);
constexpr ImU32 kSelectedColor = IM_COL32(255, 255, 255, 230);
constexpr ImU32 kContextColor = IM_COL32(230, 90, 90, 220);

// A 1-2-5 tick step giving about targetTicks ticks over range.
double niceStep(double range, int targetTicks);
// Axis label of a token position: 0, 500, 2k, 12.5k, 1.5M.
std::string tickLabel(double v);
// q-quantile of the finite values (0 when there are none).
float percentile(std::vector<float> v, double q);
// The statistics of one head, or the head mean for head < 0; null without statistics.
const HeadStats* headStatsOf(const LayerAnalysis& la, int head);

}  // namespace spanscope
