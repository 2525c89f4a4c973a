// Print figures of an analysis, drawn with Cairo: each figure is written as PNG, SVG and PDF, and
// beside it the numbers it shows as CSV.
//
// The figures are built from plain host data (no LibTorch here), so the CLI report, the GUI export
// and tests share them. Every file goes through a temporary file in the same folder that is
// renamed into place (AtomicFileWriter): an interrupted or failed write leaves no half-written file
// and no temporary file; failures throw InputError naming the file ("…: cannot write (disk full)").
// Text uses "DejaVu Sans" through Cairo's toy font API. CSV numbers are printed so that they read
// back to the same value (floats with 9 significant digits, doubles with 17). Pure functions;
// different figures may be written from different threads.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "engine/cost_model.h"
#include "engine/pattern.h"

namespace spanscope {

// Every figure's title: what it shows, then which model, document and pattern it shows it for.
struct FigureTitle {
    std::string what;      // e.g. "Attention distance profile"
    std::string model;     // e.g. the model folder's name
    std::string document;  // e.g. the document's file name
    std::string pattern;   // text form, e.g. "full*2,window:256*2"
};

// Attention mass per log2-distance bin, one line per layer (head mean).
// Bin 0: distance 0; bin k >= 1: distance in [2^(k-1), 2^k).
struct DistanceProfileFigure {
    FigureTitle title;
    std::vector<LayerSpec> specs;              // (L)
    std::vector<std::vector<double>> binMass;  // (L, NB): mean over queries, each row sums to 1
};

// One pooled attention map: query bin x key bin over the region [q0, q1) x [k0, k1).
// Bin b of n tokens split into P bins covers [lo + ceil(b·n/P), lo + ceil((b+1)·n/P)).
struct AttentionMapFigure {
    FigureTitle title;
    int layer = 0;
    int head = -1;  // -1: mean over heads
    LayerSpec spec;
    int64_t q0 = 0, q1 = 0, k0 = 0, k1 = 0;
    int64_t rows = 0, cols = 0;   // Pq, Pk
    std::vector<float> values;    // (Pq, Pk) row-major: mean mass a bin's queries put in a key bin
};

// Per-token loss along the document, for the pattern and (when given) all-full attention.
struct TokenLossFigure {
    FigureTitle title;
    std::vector<float> patternLoss;  // (T-1): loss of predicting token t+1 at position t
    std::vector<float> fullLoss;     // (T-1) or empty
    int64_t smoothing = 0;           // running-mean window drawn (tokens); 0: T/100, at least 1
};

// Perplexity against relative attention cost C over a boundary sweep l = 0..L.
struct SweepFigure {
    FigureTitle title;
    std::string sparse;  // the sparse kind above the boundary, text form
    struct Point {
        int boundary = 0;
        double relativeCost = 0, meanLoss = 0, perplexity = 0;
    };
    std::vector<Point> points;
    int currentBoundary = -1;  // highlighted point; -1: none
};

// The cost model's per-layer table and totals.
struct CostTableFigure {
    FigureTitle title;
    LayerPattern pattern;
    CostSummary cost;
    int64_t tokens = 0, heads = 0, headDim = 0;
};

// The formats every figure is written in, as file extensions.
const std::vector<std::string>& figureFormats();

// Write <base>.png, <base>.svg and <base>.pdf.
void writeFigure(const std::string& base, const DistanceProfileFigure& f);
void writeFigure(const std::string& base, const AttentionMapFigure& f);
void writeFigure(const std::string& base, const TokenLossFigure& f);
void writeFigure(const std::string& base, const SweepFigure& f);
void writeFigure(const std::string& base, const CostTableFigure& f);

// The numbers behind each figure, as CSV text (header line first).
std::string figureCsv(const DistanceProfileFigure& f);
std::string figureCsv(const AttentionMapFigure& f);
std::string figureCsv(const TokenLossFigure& f);
std::string figureCsv(const SweepFigure& f);
std::string figureCsv(const CostTableFigure& f);

// Running mean of v over a trailing window of `window` values (shorter at the start).
std::vector<double> runningMean(const std::vector<float>& v, int64_t window);
// The smoothing window a TokenLossFigure draws with.
int64_t lossSmoothingWindow(const TokenLossFigure& f);

}  // namespace spanscope
