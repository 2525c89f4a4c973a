#include "views/plot_util.h"

#include "views/view.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace spanscope {

double niceStep(double range, int targetTicks) {
    const double raw = std::max(range, 1e-9) / std::max(targetTicks, 1);
    const double mag = std::pow(10.0, std::floor(std::log10(raw)));
    const double f = raw / mag;
    return mag * (f < 1.5 ? 1.0 : f < 3.5 ? 2.0 : f < 7.5 ? 5.0 : 10.0);
}

std::string tickLabel(double v) {
    char buf[32];
    if (v >= 1e6) std::snprintf(buf, sizeof buf, "%gM", v / 1e6);
    else if (v >= 1e3) std::snprintf(buf, sizeof buf, "%gk", v / 1e3);
    else std::snprintf(buf, sizeof buf, "%g", v);
    return buf;
}

bool beginColumnTooltip(bool hovered, const ImVec2& p0, const ImVec2& p1, int columns, int64_t tokens,
                        const DocumentInfo& doc, ColumnHover& out) {
    const ImVec2 mouse = ImGui::GetIO().MousePos;
    if (!hovered || mouse.x < p0.x || mouse.x >= p1.x || columns <= 0 || tokens <= 0) return false;
    out.column = std::clamp(static_cast<int>(mouse.x - p0.x), 0, columns - 1);
    out.token = std::clamp<int64_t>(static_cast<int64_t>((mouse.x - p0.x) / (p1.x - p0.x) * static_cast<float>(tokens)), 0,
                                    tokens - 1);
    out.first = out.column * tokens / columns;
    out.end = std::max(out.first + 1, (out.column + 1) * tokens / columns);
    ImGui::BeginTooltip();
    if (out.end - out.first == 1)
        ImGui::Text("token %lld '%s'", static_cast<long long>(out.first), tokenLabel(doc, out.first).c_str());
    else ImGui::Text("tokens %lld to %lld", static_cast<long long>(out.first), static_cast<long long>(out.end - 1));
    return true;
}

const HeadStats* headStatsOf(const LayerAnalysis& la, int head) {
    if (la.heads.empty()) return nullptr;
    if (head >= 0 && head < static_cast<int>(la.heads.size())) return &la.heads[static_cast<size_t>(head)];
    return &la.headMean;
}

}  // namespace spanscope
