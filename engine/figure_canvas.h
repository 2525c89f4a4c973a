// Cairo helpers shared by the figure files (internal to spanscope_figures): text, axes with ticks,
// legends, colour maps, and writing one drawing to PNG, SVG and PDF through AtomicFileWriter.
// Units are PostScript points (1/72 in); PNGs are rendered at 2x for print.
#pragma once

#include <cairo.h>

#include <functional>
#include <string>
#include <vector>

#include "engine/figures.h"

namespace spanscope::fig {

struct Rgb {
    double r = 0, g = 0, b = 0;
};
struct Rect {
    double x = 0, y = 0, w = 0, h = 0;
    double right() const { return x + w; }
    double bottom() const { return y + h; }
};

constexpr double kPngScale = 2.0;
constexpr double kFontTitle = 14, kFontSubtitle = 9.5, kFontLabel = 10, kFontTick = 8.5;
constexpr Rgb kInk{0.12, 0.12, 0.14}, kMuted{0.38, 0.38, 0.42}, kGrid{0.88, 0.88, 0.90};

void setFont(cairo_t* cr, double size, bool bold = false);
void setColor(cairo_t* cr, const Rgb& c, double alpha = 1.0);
double textWidth(cairo_t* cr, const std::string& s);
// Draws s with its anchor at (x, y): ax 0 left / 0.5 centre / 1 right; ay 0 top / 0.5 middle /
// 1 bottom of the font's ascent. rotate: quarter turn counter-clockwise (a vertical axis label).
void drawText(cairo_t* cr, double x, double y, const std::string& s, double ax, double ay, bool rotate = false);
// s shortened with "…" to fit maxWidth in the current font.
std::string fitText(cairo_t* cr, const std::string& s, double maxWidth);

// Draws the two title lines at the top; returns the y below them.
double drawTitle(cairo_t* cr, const FigureTitle& t, double width);

struct Axis {
    double lo = 0, hi = 1;
    std::vector<double> ticks;
    std::vector<std::string> tickLabels;
    std::string label;
    bool downward = false;  // a vertical axis whose values grow downwards (matrix rows)
    double map(double v, double a, double b) const { return a + (v - lo) / (hi - lo) * (b - a); }
};
// Axis over [lo, hi] widened to 1-2-5 tick steps, about `targetTicks` ticks.
Axis niceAxis(double lo, double hi, int targetTicks, const std::string& label);
// Axis over exactly [lo, hi] with the 1-2-5 ticks that fall inside it.
Axis exactAxis(double lo, double hi, int targetTicks, const std::string& label);
// Tick label with the decimals a tick step needs: 0, 0.25, 500, 515.05, 12.5k, 1.5M.
std::string tickLabel(double v, double step);
// White plot area, grid, frame, ticks with labels and the two axis labels.
void drawAxes(cairo_t* cr, const Rect& plot, const Axis& x, const Axis& y);

struct LegendEntry {
    std::string label;
    Rgb color;
    bool dashed = false;
    bool ring = false;  // a ring marker (a highlighted point) instead of a line
};
// A legend box with its top-left corner at (x, y).
void drawLegend(cairo_t* cr, double x, double y, const std::vector<LegendEntry>& entries);
double legendWidth(cairo_t* cr, const std::vector<LegendEntry>& entries);

// Distinct line colours for series i of n.
Rgb seriesColor(int i, int n);
// Sequential heat colour for t in [0, 1]: dark violet through red and orange to pale yellow.
Rgb heatColor(double t);
// Diverging colour for t in [-1, 1]: blue below 0, white at 0, red above.
Rgb divergingColor(double t);
// Black or white, whichever reads better on `fill`.
Rgb readableOn(const Rgb& fill);

// Draws `draw` on a width x height (points) page and writes base.png, base.svg and base.pdf.
void writeDrawing(const std::string& base, double width, double height, const std::function<void(cairo_t*)>& draw);

}  // namespace spanscope::fig
