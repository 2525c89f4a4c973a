#include "views/colormap.h"

#include <imgui.h>

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace spanscope {
namespace {

struct Rgb {
    float r, g, b;
};

// Hand-picked anchors, evenly spaced in t, rising in lightness: navy, blue-violet, teal, green, yellow.
constexpr Rgb kAnchors[] = {{0.05f, 0.03f, 0.20f}, {0.23f, 0.15f, 0.52f}, {0.13f, 0.45f, 0.56f},
                            {0.25f, 0.70f, 0.44f}, {0.98f, 0.91f, 0.20f}};
constexpr int kNumAnchors = sizeof(kAnchors) / sizeof(kAnchors[0]);

uint32_t pack(float r, float g, float b, uint8_t a) {
    auto c = [](float v) { return static_cast<uint32_t>(std::clamp(v, 0.0f, 1.0f) * 255.0f + 0.5f); };
    return IM_COL32(c(r), c(g), c(b), a);
}

}  // namespace

uint32_t heatColor(float t, uint8_t alpha) {
    if (!(t >= 0.0f)) t = 0.0f;  // NaN too
    t = std::min(t, 1.0f) * (kNumAnchors - 1);
    int i = std::min(static_cast<int>(t), kNumAnchors - 2);
    float f = t - static_cast<float>(i);
    const Rgb& a = kAnchors[i];
    const Rgb& b = kAnchors[i + 1];
    return pack(a.r + (b.r - a.r) * f, a.g + (b.g - a.g) * f, a.b + (b.b - a.b) * f, alpha);
}

uint32_t divergingColor(float t, uint8_t alpha) {
    if (!(t == t)) t = 0.0f;
    t = std::clamp(t, -1.0f, 1.0f);
    if (t >= 0) return pack(1.0f, 1.0f - 0.75f * t, 1.0f - 0.8f * t, alpha);
    return pack(1.0f + 0.8f * t, 1.0f + 0.6f * t, 1.0f, alpha);
}

void drawColorBar(ImDrawList* dl, const ImVec2& p, const ImVec2& size, float minValue, float maxValue, bool logScale,
                  const char* label) {
    const int steps = 64;
    for (int s = 0; s < steps; ++s) {
        float t0 = static_cast<float>(s) / steps, t1 = static_cast<float>(s + 1) / steps;
        // Top of the bar is the maximum.
        dl->AddRectFilled(ImVec2(p.x, p.y + size.y * (1 - t1)), ImVec2(p.x + size.x, p.y + size.y * (1 - t0) + 1),
                          heatColor(0.5f * (t0 + t1)));
    }
    dl->AddRect(p, ImVec2(p.x + size.x, p.y + size.y), IM_COL32(200, 200, 200, 255));
    char buf[64];
    auto fmt = [&](float v) {
        if (logScale) std::snprintf(buf, sizeof buf, "1e%.1f", v);
        else std::snprintf(buf, sizeof buf, "%.3g", v);
        return buf;
    };
    dl->AddText(ImVec2(p.x + size.x + 4, p.y - 6), IM_COL32(230, 230, 230, 255), fmt(maxValue));
    dl->AddText(ImVec2(p.x + size.x + 4, p.y + size.y - 8), IM_COL32(230, 230, 230, 255), fmt(minValue));
    if (label) dl->AddText(ImVec2(p.x, p.y + size.y + 4), IM_COL32(200, 200, 200, 255), label);
}

}  // namespace spanscope
