// The Compare view's figures: two patterns' totals and per-layer numbers side by side, and the
// per-token loss difference along the document; see figures.h.
#include <algorithm>
#include <cmath>
#include <cstdio>

#include "engine/figure_canvas.h"
#include "engine/figures.h"

namespace spanscope {

using namespace fig;

namespace {

constexpr Rgb kCompareInk{0.82, 0.42, 0.05};  // the compare pattern, as in the app (orange)

std::string fmt(const char* format, double v) {
    if (!std::isfinite(v)) return "–";
    char buf[48];
    std::snprintf(buf, sizeof buf, format, v);
    return buf;
}

}  // namespace

int64_t compareSmoothingWindow(const CompareLossFigure& f) {
    if (f.smoothing > 0) return f.smoothing;
    return std::max<int64_t>(1, static_cast<int64_t>(std::min(f.currentLoss.size(), f.compareLoss.size())) / 100);
}

void writeFigure(const std::string& base, const CompareLayersFigure& f) {
    const double rowH = 17, width = 720;
    const size_t L = std::min(f.currentLayers.size(), f.compareLayers.size());
    const double height = 52 + 14 + rowH * 6 + 24 + rowH * (static_cast<double>(L) + 2) + 40;
    writeDrawing(base, width, height, [&](cairo_t* cr) {
        double y = drawTitle(cr, f.title, width) + 14;
        auto rule = [&](double at) {
            setColor(cr, kInk);
            cairo_set_line_width(cr, 0.8);
            cairo_move_to(cr, 20, at);
            cairo_line_to(cr, width - 20, at);
            cairo_stroke(cr);
        };
        // Totals: quantity, current, compare, difference.
        const double tx[] = {24, 330, 470, 600};
        setFont(cr, kFontLabel, true);
        setColor(cr, kInk);
        drawText(cr, tx[0], y, "totals", 0, 0.5);
        drawText(cr, tx[1], y, "current", 1, 0.5);
        setColor(cr, kCompareInk);
        drawText(cr, tx[2], y, "compare", 1, 0.5);
        setColor(cr, kInk);
        drawText(cr, tx[3], y, "compare − current", 1, 0.5);
        y += rowH * 0.6;
        rule(y);
        y += rowH * 0.8;
        auto total = [&](const std::string& label, const char* format, double a, double b) {
            setFont(cr, kFontLabel);
            setColor(cr, kInk);
            drawText(cr, tx[0], y, label, 0, 0.5);
            drawText(cr, tx[1], y, fmt(format, a), 1, 0.5);
            drawText(cr, tx[3], y, std::isfinite(a) && std::isfinite(b) ? fmt("%+.4f", b - a) : "–", 1, 0.5);
            setColor(cr, kCompareInk);
            drawText(cr, tx[2], y, fmt(format, b), 1, 0.5);
            y += rowH;
        };
        setFont(cr, kFontLabel);
        setColor(cr, kInk);
        drawText(cr, tx[0], y, "pattern", 0, 0.5);
        drawText(cr, tx[1], y, fitText(cr, f.currentPattern, 250), 1, 0.5);
        setColor(cr, kCompareInk);
        drawText(cr, tx[2], y, fitText(cr, f.comparePattern, 130), 1, 0.5);
        y += rowH;
        total("mean loss (nats/token)", "%.4f", f.current.meanLoss, f.compare.meanLoss);
        total("perplexity", "%.3f", f.current.perplexity, f.compare.perplexity);
        total("relative attention cost C", "%.4f", f.current.relativeCost, f.compare.relativeCost);
        total("mean loss after token " + std::to_string(f.context), "%.4f", f.current.lossAfterContext,
              f.compare.lossAfterContext);
        y += 14;

        // Per layer: each quantity as a pair of columns (right edges), current then compare.
        struct Pair { const char* name; double current, compare, cell; };
        const Pair pairs[] = {{"attention", 150, 232, 78},      {"mass beyond span", 300, 356, 50},
                              {"mean distance", 424, 480, 50},  {"entropy", 540, 590, 44},
                              {"share of full", 648, 700, 46}};
        setFont(cr, kFontLabel, true);
        setColor(cr, kInk);
        drawText(cr, 50, y + rowH / 2, "layer", 1, 0.5);
        for (const auto& p : pairs) drawText(cr, 0.5 * (p.current - p.cell + p.compare), y, p.name, 0.5, 0.5);
        y += rowH - 2;
        setFont(cr, kFontTick);
        for (const auto& p : pairs) {
            setColor(cr, kInk);
            drawText(cr, p.current, y, "current", 1, 0.5);
            setColor(cr, kCompareInk);
            drawText(cr, p.compare, y, "compare", 1, 0.5);
        }
        y += rowH * 0.5;
        rule(y);
        y += rowH * 0.7;
        for (size_t i = 0; i < L; ++i) {
            const size_t l = L - 1 - i;
            const LayerRow &a = f.currentLayers[l], &b = f.compareLayers[l];
            if (i % 2 == 1) {
                cairo_set_source_rgb(cr, 0.95, 0.95, 0.97);
                cairo_rectangle(cr, 20, y - rowH / 2, width - 40, rowH);
                cairo_fill(cr);
            }
            setFont(cr, kFontLabel, a.spec != b.spec);
            setColor(cr, kInk);
            drawText(cr, 50, y, std::to_string(l), 1, 0.5);
            const std::string cells[][2] = {{a.spec.text(), b.spec.text()},
                                            {fmt("%.3f", a.beyondMass), fmt("%.3f", b.beyondMass)},
                                            {fmt("%.1f", a.meanDistance), fmt("%.1f", b.meanDistance)},
                                            {fmt("%.2f", a.entropy), fmt("%.2f", b.entropy)},
                                            {fmt("%.1f%%", 100 * a.shareOfFull), fmt("%.1f%%", 100 * b.shareOfFull)}};
            setFont(cr, kFontLabel);
            for (size_t c = 0; c < 5; ++c) {
                setColor(cr, kInk);
                drawText(cr, pairs[c].current, y, fitText(cr, cells[c][0], pairs[c].cell), 1, 0.5);
                setColor(cr, kCompareInk);
                drawText(cr, pairs[c].compare, y, fitText(cr, cells[c][1], pairs[c].cell), 1, 0.5);
            }
            y += rowH;
        }
        char note[256];
        const std::string head = f.head < 0 ? "the head mean" : "head " + std::to_string(f.head);
        std::snprintf(note, sizeof note,
                      "Statistics of %s; mass beyond span: at distance ≥ %lld (current) and ≥ %lld (compare).  "
                      "Bold layers differ in their pattern.",
                      head.c_str(), static_cast<long long>(f.current.beyondSpan),
                      static_cast<long long>(f.compare.beyondSpan));
        setColor(cr, kMuted);
        setFont(cr, kFontTick);
        drawText(cr, 20, y + 4, fitText(cr, note, width - 40), 0, 0);
    });
}

void writeFigure(const std::string& base, const CompareLossFigure& f) {
    const double width = 720, height = 456;
    const size_t n = std::min(f.currentLoss.size(), f.compareLoss.size());
    writeDrawing(base, width, height, [&](cairo_t* cr) {
        const double top = drawTitle(cr, f.title, width);
        const std::vector<LegendEntry> legend = {{"compare predicts worse", divergingColor(0.8), false},
                                                 {"compare predicts better", divergingColor(-0.8), false},
                                                 {"running mean", kInk, false}};
        const double lw = legendWidth(cr, legend);
        const Rect plot{78, top + 8, width - 78 - 32 - lw, height - top - 8 - 66};
        // Bins of whole tokens, about one per point of the plot; each bar is its bin's mean.
        const size_t bins = std::max<size_t>(1, std::min(n, static_cast<size_t>(plot.w)));
        std::vector<double> mean(bins, NAN);
        double largest = 0;
        for (size_t b = 0; b < bins; ++b) {
            const size_t lo = b * n / bins, hi = std::max(lo + 1, (b + 1) * n / bins);
            double sum = 0;
            for (size_t i = lo; i < hi && i < n; ++i) sum += static_cast<double>(f.compareLoss[i]) - f.currentLoss[i];
            mean[b] = sum / static_cast<double>(hi - lo);
            if (std::isfinite(mean[b])) largest = std::max(largest, std::fabs(mean[b]));
        }
        const double range = std::max(1.15 * largest, 0.01);
        const Axis x = exactAxis(0, static_cast<double>(std::max<size_t>(n, 1)), 8, "token position");
        Axis y = niceAxis(-range, range, 6, "loss, compare − current (nats/token)");
        drawAxes(cr, plot, x, y);
        cairo_save(cr);
        cairo_rectangle(cr, plot.x, plot.y, plot.w, plot.h);
        cairo_clip(cr);
        const double zero = y.map(0, plot.bottom(), plot.y);
        for (size_t b = 0; b < bins; ++b) {
            if (!std::isfinite(mean[b])) continue;
            const double x0 = x.map(static_cast<double>(b * n / bins), plot.x, plot.right());
            const double x1 = x.map(static_cast<double>(std::max(b * n / bins + 1, (b + 1) * n / bins)), plot.x, plot.right());
            setColor(cr, divergingColor((mean[b] >= 0 ? 1 : -1) * (0.35 + 0.65 * std::min(std::fabs(mean[b]) / range, 1.0))));
            const double ym = y.map(mean[b], plot.bottom(), plot.y);
            cairo_rectangle(cr, x0, std::min(ym, zero), std::max(x1 - x0, 0.6), std::fabs(ym - zero));
            cairo_fill(cr);
        }
        setColor(cr, kInk);
        cairo_set_line_width(cr, 0.8);
        cairo_move_to(cr, plot.x, zero);
        cairo_line_to(cr, plot.right(), zero);
        cairo_stroke(cr);
        // The running mean the CSV holds, at most ~2 points per point of the plot.
        std::vector<float> diff(n);
        for (size_t i = 0; i < n; ++i) diff[i] = f.compareLoss[i] - f.currentLoss[i];
        const int64_t window = compareSmoothingWindow(f);
        const std::vector<double> run = runningMean(diff, window);
        const size_t stride = std::max<size_t>(1, n / static_cast<size_t>(2 * plot.w));
        bool started = false;
        for (size_t i = static_cast<size_t>(window) - 1; i < n; i += stride) {
            const double px = x.map(static_cast<double>(i), plot.x, plot.right()), py = y.map(run[i], plot.bottom(), plot.y);
            if (!started) cairo_move_to(cr, px, py), started = true;
            else cairo_line_to(cr, px, py);
        }
        cairo_set_line_width(cr, 1.2);
        cairo_stroke(cr);
        if (f.context > 0 && f.context < static_cast<int64_t>(n)) {
            const double cx = x.map(static_cast<double>(f.context), plot.x, plot.right());
            setColor(cr, {0.55, 0.55, 0.6});
            const double dash[] = {4, 3};
            cairo_set_dash(cr, dash, 2, 0);
            cairo_move_to(cr, cx, plot.y);
            cairo_line_to(cr, cx, plot.bottom());
            cairo_stroke(cr);
            cairo_set_dash(cr, nullptr, 0, 0);
            setFont(cr, kFontTick);
            drawText(cr, cx + 4, plot.y + 6, "training context " + std::to_string(f.context), 0, 0);
        }
        cairo_restore(cr);
        drawLegend(cr, plot.right() + 12, plot.y, legend);
        setColor(cr, kMuted);
        setFont(cr, kFontTick);
        char caption[200];
        std::snprintf(caption, sizeof caption,
                      "bars: mean of each bin of %.1f tokens; line: running mean over %lld tokens (as in the CSV)",
                      static_cast<double>(n) / static_cast<double>(bins), static_cast<long long>(window));
        drawText(cr, plot.x, plot.bottom() + 40, caption, 0, 0);
    });
}

}  // namespace spanscope
