// Colour maps for heat maps and token tints, and a colour bar widget. UI thread only.
#pragma once

#include <cstdint>

struct ImDrawList;
struct ImVec2;

namespace spanscope {

// t in [0, 1] -> packed ImGui colour (IM_COL32 layout), a dark-blue → teal → yellow ramp
// that rises monotonically in lightness (readable in grey scale).
uint32_t heatColor(float t, uint8_t alpha = 255);
// Signed value in [-1, 1] -> blue (negative) / white / red (positive).
uint32_t divergingColor(float t, uint8_t alpha = 255);

// A vertical colour bar with min/max labels; `logScale` labels the ends as 10^x.
void drawColorBar(ImDrawList* dl, const ImVec2& topLeft, const ImVec2& size, float minValue, float maxValue,
                  bool logScale, const char* label);

}  // namespace spanscope
