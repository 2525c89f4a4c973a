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

// What the Document view tints each token by.
enum class TokenTint { Loss, DeltaLoss, Attention, BeyondSpan, Selections };
const char* tokenTintName(TokenTint t);           // "loss", "delta", "attention", "beyond", "selections"
TokenTint parseTokenTint(const std::string& s);   // InputError for another name

// A window of the document as wrapped text, each token on its tint colour, with a colour bar (the
// Document view). Per shown token i (N of them): the numbers the tints come from. The CSV's text
// column escapes backslash, tab, CR and LF (\\ \t \r \n) and control bytes and bytes that are not a
// whole UTF-8 character in the token (\xNN), so joined and unescaped it is the document's bytes.
struct DocumentTextFigure {
    FigureTitle title;
    TokenTint tint = TokenTint::Loss;
    int layer = 0, head = -1;            // of the attention and beyond-span tints; head -1: mean
    int64_t query = -1;                  // the selected query token (outlined); -1: none
    int64_t beyondSpan = 0;
    int64_t first = 0, totalTokens = 0;  // the window is tokens [first, first + N) of T
    std::vector<int32_t> ids;            // (N)
    std::vector<std::string> text;       // (N) each token's bytes (a UTF-8 character may span tokens)
    std::vector<std::string> display;    // (N) what is drawn: printable UTF-8, '\n' for a line break
    std::vector<float> loss, fullLoss, attention, beyond;  // (N) each, NaN: none. loss[i]: of predicting token i
    std::vector<float> selection;  // (N) SparseK layer: the query's mask m on its selected keys, or (no
                                   // query) how many queries selected the token; NaN: none (selectionTint)
    // The tint: values (N, NaN: untinted) coloured over [lo, hi]; diverging: blue below 0, red
    // above, scaled by hi; logScale: values are log10 of the attention. caption: what the colours
    // mean, or why there are none.
    std::vector<float> values;
    float lo = 0, hi = 1;
    bool diverging = false, logScale = false;
    std::string caption;
};

// Per-layer numbers of one pattern's analysis, as the Layers and Compare views show them.
struct LayerRow {
    LayerSpec spec;
    int64_t pairs = 0;
    double shareOfFull = 0;
    double beyondMass = 0, meanDistance = 0, entropy = 0, sinkMass = 0;  // of `head` (or the head mean)
};

// The layer stack (Layers view): one row per layer, top layer first, the full/sparse boundary
// marked, the selected layer highlighted.
struct LayerStackFigure {
    FigureTitle title;
    std::vector<LayerRow> layers;  // (L), bottom first
    int boundary = 0;              // layers below it are full
    int selectedLayer = -1;
    int head = -1;                 // statistics of this head; -1: head mean
    int64_t beyondSpan = 0, tokens = 0;
    double relativeCost = 0;
};

// Two patterns on the same document (Compare view): totals and per-layer numbers side by side.
struct CompareLayersFigure {
    FigureTitle title;
    std::string currentPattern, comparePattern;
    struct Totals {
        double meanLoss = 0, perplexity = 0, relativeCost = 0, lossAfterContext = 0;  // NaN: none
        int64_t beyondSpan = 0;
    };
    Totals current, compare;
    int64_t context = 0;                          // the model's training context (maxPositions)
    std::vector<LayerRow> currentLayers, compareLayers;  // (L) each
    int head = -1;
};

// Per-token loss difference of two patterns (compare minus current) along the document.
struct CompareLossFigure {
    FigureTitle title;
    std::string currentPattern, comparePattern;
    std::vector<float> currentLoss, compareLoss;  // (T-1) each
    int64_t context = 0;                          // marked when inside the document; 0: none
    int64_t smoothing = 0;                        // running-mean window drawn; 0: T/100, at least 1
};

// The formats every figure is written in, as file extensions.
const std::vector<std::string>& figureFormats();

// Write <base>.png, <base>.svg and <base>.pdf.
void writeFigure(const std::string& base, const DistanceProfileFigure& f);
void writeFigure(const std::string& base, const AttentionMapFigure& f);
void writeFigure(const std::string& base, const TokenLossFigure& f);
void writeFigure(const std::string& base, const SweepFigure& f);
void writeFigure(const std::string& base, const CostTableFigure& f);
void writeFigure(const std::string& base, const DocumentTextFigure& f);
void writeFigure(const std::string& base, const LayerStackFigure& f);
void writeFigure(const std::string& base, const CompareLayersFigure& f);
void writeFigure(const std::string& base, const CompareLossFigure& f);

// The numbers behind each figure, as CSV text (header line first).
std::string figureCsv(const DistanceProfileFigure& f);
std::string figureCsv(const AttentionMapFigure& f);
std::string figureCsv(const TokenLossFigure& f);
std::string figureCsv(const SweepFigure& f);
std::string figureCsv(const CostTableFigure& f);
std::string figureCsv(const DocumentTextFigure& f);
std::string figureCsv(const LayerStackFigure& f);
std::string figureCsv(const CompareLayersFigure& f);
std::string figureCsv(const CompareLossFigure& f);

// Running mean of v over a trailing window of `window` values (shorter at the start).
std::vector<double> runningMean(const std::vector<float>& v, int64_t window);
// The smoothing window a TokenLossFigure draws with.
int64_t lossSmoothingWindow(const TokenLossFigure& f);
int64_t compareSmoothingWindow(const CompareLossFigure& f);

}  // namespace spanscope
