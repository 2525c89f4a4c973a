// Line figures: distance profile, per-token loss, perplexity against cost; see figures.h.
#include <algorithm>
#include <cmath>

#include "engine/figure_canvas.h"
#include "engine/figures.h"

namespace spanscope {

using namespace fig;

namespace {

constexpr double kWidth = 720, kHeight = 440;

// Left, top, right, bottom margins around the plot area, leaving room for the legend on the right.
Rect plotArea(double top, double legendW) { return {78, top + 8, kWidth - 78 - 20 - legendW, kHeight - top - 8 - 50}; }

// "1", "2", ..., "512", "1k", "2k", ...: lower edges of log2-distance bins.
std::string distanceLabel(int bin) {
    if (bin == 0) return "0";
    const int64_t d = int64_t{1} << (bin - 1);
    return d >= 1024 ? std::to_string(d / 1024) + "k" : std::to_string(d);
}

void polyline(cairo_t* cr, const std::vector<double>& xs, const std::vector<double>& ys) {
    for (size_t i = 0; i < xs.size(); ++i) {
        if (i == 0) cairo_move_to(cr, xs[i], ys[i]);
        else cairo_line_to(cr, xs[i], ys[i]);
    }
    cairo_stroke(cr);
}

}  // namespace

const std::vector<std::string>& figureFormats() {
    static const std::vector<std::string> kFormats = {"png", "svg", "pdf"};
    return kFormats;
}

std::vector<double> runningMean(const std::vector<float>& v, int64_t window) {
    window = std::max<int64_t>(window, 1);
    std::vector<double> out(v.size());
    double sum = 0;
    for (size_t i = 0; i < v.size(); ++i) {
        sum += v[i];
        if (i >= static_cast<size_t>(window)) sum -= v[i - static_cast<size_t>(window)];
        out[i] = sum / static_cast<double>(std::min<int64_t>(static_cast<int64_t>(i) + 1, window));
    }
    return out;
}

int64_t lossSmoothingWindow(const TokenLossFigure& f) {
    if (f.smoothing > 0) return f.smoothing;
    return std::max<int64_t>(1, static_cast<int64_t>(f.patternLoss.size()) / 100);
}

void writeFigure(const std::string& base, const DistanceProfileFigure& f) {
    int maxBin = 1;  // the last bin any layer puts mass in
    for (const auto& row : f.binMass)
        for (size_t b = 0; b < row.size(); ++b)
            if (row[b] > 0) maxBin = std::max(maxBin, static_cast<int>(b));
    double maxMass = 0;
    for (const auto& row : f.binMass)
        for (double m : row) maxMass = std::max(maxMass, m);
    writeDrawing(base, kWidth, kHeight, [&](cairo_t* cr) {
        const double top = drawTitle(cr, f.title, kWidth);
        const int L = static_cast<int>(f.binMass.size());
        std::vector<LegendEntry> legend;
        for (int l = L - 1; l >= 0; --l)  // top layer first, as in the layer stack
            legend.push_back({"layer " + std::to_string(l) + "  " + f.specs[static_cast<size_t>(l)].text(),
                              seriesColor(l, L), f.specs[static_cast<size_t>(l)].kind != AttentionKind::Full});
        const double lw = legendWidth(cr, legend);
        const Rect plot = plotArea(top, lw + 12);
        Axis x;
        x.lo = -0.3;
        x.hi = maxBin + 0.3;
        x.label = "query–key distance (tokens; log₂ bins, labelled by their lower edge)";
        for (int b = 0; b <= maxBin; ++b) {
            x.ticks.push_back(b);
            x.tickLabels.push_back(distanceLabel(b));
        }
        Axis y = niceAxis(0, std::max(maxMass, 1e-6), 6, "attention mass (share of each query's row)");
        y.lo = 0;
        drawAxes(cr, plot, x, y);
        for (int l = 0; l < L; ++l) {
            std::vector<double> xs, ys;
            for (int b = 0; b <= maxBin; ++b) {
                xs.push_back(x.map(b, plot.x, plot.right()));
                ys.push_back(y.map(f.binMass[static_cast<size_t>(l)][static_cast<size_t>(b)], plot.bottom(), plot.y));
            }
            setColor(cr, seriesColor(l, L));
            // Lower layers are drawn first and wider, so layers with equal profiles stay visible.
            cairo_set_line_width(cr, 1.4 + 2.2 * (L - 1 - l) / std::max(L - 1, 1));
            const double dash[] = {4, 2.5};
            cairo_set_dash(cr, dash, f.specs[static_cast<size_t>(l)].kind != AttentionKind::Full ? 2 : 0, 0);
            polyline(cr, xs, ys);
            cairo_set_dash(cr, nullptr, 0, 0);
            for (size_t i = 0; i < xs.size(); ++i) {
                cairo_new_path(cr);
                cairo_arc(cr, xs[i], ys[i], 1.8, 0, 2 * M_PI);
                cairo_fill(cr);
            }
        }
        drawLegend(cr, plot.right() + 12, plot.y, legend);
    });
}

void writeFigure(const std::string& base, const TokenLossFigure& f) {
    const int64_t window = lossSmoothingWindow(f);
    const std::vector<double> pattern = runningMean(f.patternLoss, window);
    const std::vector<double> full = runningMean(f.fullLoss, window);
    double lo = INFINITY, hi = -INFINITY;
    for (const auto* v : {&pattern, &full})
        for (size_t i = static_cast<size_t>(window) - 1; i < v->size(); ++i)  // skip the short-window start
            if (std::isfinite((*v)[i])) lo = std::min(lo, (*v)[i]), hi = std::max(hi, (*v)[i]);
    writeDrawing(base, kWidth, kHeight, [&](cairo_t* cr) {
        const double top = drawTitle(cr, f.title, kWidth);
        std::vector<LegendEntry> legend = {{"pattern " + f.title.pattern, seriesColor(0, 2), false}};
        if (!f.fullLoss.empty()) legend.push_back({"all-full attention", seriesColor(1, 2), true});
        const double lw = legendWidth(cr, legend);
        const Rect plot = plotArea(top, lw + 12);
        const Axis x = exactAxis(0, static_cast<double>(std::max<size_t>(f.patternLoss.size(), 1)), 8,
                                 "token position (loss of predicting the next token)");
        const Axis y = niceAxis(lo, hi, 6,
                                "loss (nats/token, running mean over " + std::to_string(window) + " tokens)");
        drawAxes(cr, plot, x, y);
        cairo_save(cr);
        cairo_rectangle(cr, plot.x, plot.y, plot.w, plot.h);
        cairo_clip(cr);
        const std::vector<double>* series[] = {&pattern, &full};
        for (int s = 0; s < 2; ++s) {
            const auto& v = *series[s];
            if (v.empty()) continue;
            // At most ~2 points per horizontal point of the plot: keep each stretch's mean.
            const size_t stride = std::max<size_t>(1, v.size() / static_cast<size_t>(2 * plot.w));
            std::vector<double> xs, ys;
            for (size_t i = static_cast<size_t>(window) - 1; i < v.size(); i += stride) {  // full windows only
                xs.push_back(x.map(static_cast<double>(i), plot.x, plot.right()));
                ys.push_back(y.map(v[i], plot.bottom(), plot.y));
            }
            setColor(cr, seriesColor(s, 2));
            cairo_set_line_width(cr, 1.3);
            const double dash[] = {5, 3};
            cairo_set_dash(cr, dash, s == 1 ? 2 : 0, 0);
            polyline(cr, xs, ys);
            cairo_set_dash(cr, nullptr, 0, 0);
        }
        cairo_restore(cr);
        drawLegend(cr, plot.right() + 12, plot.y, legend);
    });
}

void writeFigure(const std::string& base, const SweepFigure& f) {
    double lo = INFINITY, hi = -INFINITY;
    for (const auto& p : f.points)
        if (std::isfinite(p.perplexity)) lo = std::min(lo, p.perplexity), hi = std::max(hi, p.perplexity);
    writeDrawing(base, kWidth, kHeight, [&](cairo_t* cr) {
        const double top = drawTitle(cr, f.title, kWidth);
        std::vector<LegendEntry> legend = {{"l full layers, " + f.sparse + " above", seriesColor(0, 1), false}};
        if (f.currentBoundary >= 0) legend.push_back({"the report's pattern", kInk, false, true});
        const double lw = legendWidth(cr, legend);
        const Rect plot = plotArea(top, lw + 12);
        Axis x = niceAxis(0, 1, 10, "relative attention cost C (share of all-full attended pairs)");
        const double pad = std::max(1e-3, 0.08 * (hi - lo));
        const Axis y = niceAxis(lo - pad, hi + pad, 6, "perplexity (exp of mean loss)");
        drawAxes(cr, plot, x, y);
        std::vector<double> xs, ys;
        for (const auto& p : f.points) {
            xs.push_back(x.map(p.relativeCost, plot.x, plot.right()));
            ys.push_back(y.map(p.perplexity, plot.bottom(), plot.y));
        }
        setColor(cr, seriesColor(0, 1));
        cairo_set_line_width(cr, 1.5);
        polyline(cr, xs, ys);
        setFont(cr, kFontTick);
        for (size_t i = 0; i < xs.size(); ++i) {
            setColor(cr, seriesColor(0, 1));
            cairo_new_path(cr);  // drawText leaves a current point that cairo_arc would join
            cairo_arc(cr, xs[i], ys[i], 3, 0, 2 * M_PI);
            cairo_fill(cr);
            if (f.points[i].boundary == f.currentBoundary) {
                setColor(cr, kInk);
                cairo_set_line_width(cr, 1.2);
                cairo_new_path(cr);
                cairo_arc(cr, xs[i], ys[i], 6, 0, 2 * M_PI);
                cairo_stroke(cr);
            }
            setColor(cr, kMuted);
            // Labels alternate above and below the line so neighbouring points stay readable.
            const double off = f.points[i].boundary == f.currentBoundary ? 11 : 8;  // clear of the ring
            drawText(cr, xs[i], ys[i] + (i % 2 ? off : -off), "l=" + std::to_string(f.points[i].boundary), 0.5,
                     i % 2 ? 0 : 1);
        }
        drawLegend(cr, plot.right() + 12, plot.y, legend);
    });
}

}  // namespace spanscope
