// Analysis of one document under one layer pattern: per-token loss, exact attention statistics
// per layer and head, pooled attention maps, exact rows, and the cost of the pattern.
//
// Everything is computed in one forward pass, query block by query block, so memory is
// O(T·C + H·P² + R·H·T) per layer, never O(T²). Results are plain host data (no LibTorch in this
// header), ready to publish as an immutable snapshot. analyze() runs on the calling thread; it
// calls `progress` between layers and throws Cancelled when `cancelled` returns true.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "engine/cost_model.h"
#include "engine/pattern.h"
#include "kernels/sparsek_attention_cpu.h"

namespace spanscope {

class Model;
class AnalysisCache;

struct AnalysisOptions {
    LayerPattern pattern;
    bool withStats = true;             // false: loss only (fast path, used by sweeps)
    int64_t beyondSpan = 0;            // 0: the pattern's sparse reach, or 1024 for an all-full pattern
    int64_t sinkTokens = 4;
    int64_t poolSize = 256;            // P of the pooled maps (≤ 1024; clamped to the region)
    int64_t mapQ0 = 0, mapQ1 = -1, mapK0 = 0, mapK1 = -1;  // map region (queries x keys); -1: T
    std::vector<int64_t> queryRows;    // exact attention rows wanted for these positions
    std::function<void(int layer, int numLayers)> progress;
    std::function<bool()> cancelled;
    AnalysisCache* cache = nullptr;    // optional: reuse the layers below the first changed one
};

struct HeadStats {
    std::vector<double> binMass;  // kNumDistanceBins, mean over queries (sums to 1)
    double entropy = 0;           // mean row entropy (nats)
    double meanDistance = 0;      // mean query–key distance
    double beyondMass = 0;        // mean mass at distance ≥ beyondSpan
    double sinkMass = 0;          // mean mass on the first sinkTokens tokens
};

struct LayerAnalysis {
    LayerSpec spec;
    std::vector<HeadStats> heads;     // H (empty without stats)
    HeadStats headMean;               // mean over heads
    int64_t poolRows = 0, poolCols = 0;  // Pq x Pk bins of the map region
    std::vector<float> pooled;        // (H, Pq, Pk) row-major
    std::vector<float> beyondPerToken;   // (T) head-mean mass beyond span of each query
    std::vector<float> entropyPerToken;  // (T) head-mean entropy of each query
    std::vector<float> rows;          // (R, H, T) exact attention rows for options.queryRows
    // SparseK layers only (empty otherwise): what each head selected. countBins and maskBins are
    // means per query (divided by T); keyPicks, pooled, rowKeys/rowMask as documented there.
    SparseKSelectionStats selections;
    LayerCost cost;
    double seconds = 0;               // wall time of this layer
};

struct AnalysisResult {
    LayerPattern pattern;
    int64_t beyondSpan = 0;
    int64_t sinkTokens = 0;
    std::vector<int64_t> queryRows;
    int64_t mapQ0 = 0, mapQ1 = 0, mapK0 = 0, mapK1 = 0;  // the pooled maps' region, resolved
    int64_t numTokens = 0;
    std::vector<float> tokenLoss;     // (T-1): loss of predicting token t+1 at position t
    double meanLoss = 0;
    double perplexity = 0;
    std::vector<LayerAnalysis> layers;
    CostSummary cost;
    std::string device;
    double seconds = 0;
};

// A SparseK layer's selections in a few numbers (for the CLI, the JSON and the views).
struct SelectionSummary {
    bool present = false;                // false for layers that are not sparsek
    double selectedPerQuery = 0;         // mean keys with m > 0 per query and head
    double maskPerQuery = 0;             // mean Σ m per query and head (≤ k)
    double fractionalShare = 0;          // share of selected pairs with 0 < m < 1
    std::vector<double> countBins;       // (NB) head mean of selected keys per distance bin, per query
    int64_t medianBin = 0;               // distance bin holding the median selected key
    std::vector<int64_t> mostPicked;     // positions of the most-picked keys, most first
};
SelectionSummary summarizeSelections(const LayerAnalysis& layer, int mostPicked = 5);

AnalysisResult analyze(const Model& model, const std::vector<int32_t>& tokens, const AnalysisOptions& options);

// What one analysis leaves for the next on the same model and document: the hidden state after
// each of the bottom layers and those layers' results. The hidden state after layer l depends only
// on the tokens and the specs of layers 0..l, so a new pattern that keeps the bottom n specs (a
// boundary moved up or down: n = the lower of the two boundaries) with the same statistics
// options starts at layer n from the cached state and copies layers 0..n-1 — the result equals a
// fresh analysis. Anything else (another model or document, other statistics options, a changed
// layer) drops the entries it invalidates. Hidden states are kept for as many bottom layers as
// fit in `maxBytes`. Not thread-safe: one analysis at a time (the worker owns it).
class AnalysisCache {
public:
    explicit AnalysisCache(int64_t maxBytes = int64_t{512} << 20);
    ~AnalysisCache();
    AnalysisCache(const AnalysisCache&) = delete;
    AnalysisCache& operator=(const AnalysisCache&) = delete;
    void clear();
    int cachedLayers() const;  // bottom layers held now
    int reusedLayers() const;  // layers the last analyze() took from the cache
    struct State;              // LibTorch inside: defined in analysis.cpp
    State& state() { return *m_state; }

private:
    std::unique_ptr<State> m_state;
};

// Process-wide malloc settings for the analysis's large temporaries (tens of MB per query block):
// on a worker thread glibc would map and unmap each of them (a thread arena's heap stops at
// 64 MiB), and the page faults and page zeroing took a third of the worker's time on a 33k-token
// document (perf, bench/RESULTS_GUI.md). Keeps freed memory in the process (trimmed above 1 GiB)
// and puts every thread in the main arena, whose heap has no such limit. Idempotent; analyze()
// and sweepBoundary() call it, and a program should call it before it starts threads (Runner's
// constructor does).
void reuseHostMemoryForLargeTensors();

// Mean loss over positions [from, T-1) of a per-token loss vector (NaN if empty).
double meanLossFrom(const std::vector<float>& tokenLoss, int64_t from);

// Boundary sweep: for l = 0..L, the pattern with l full bottom layers and `sparse` above.
struct SweepPoint {
    int boundary = 0;
    double relativeCost = 0;  // C
    double meanLoss = 0;
    double perplexity = 0;
    std::vector<float> tokenLoss;
};
// Shares the full prefix between boundaries (layers below l are the same for every sweep point),
// so the whole sweep costs one all-full pass plus L(L+1)/2 sparse layers.
std::vector<SweepPoint> sweepBoundary(const Model& model, const std::vector<int32_t>& tokens, const LayerSpec& sparse,
                                      const std::function<void(int done, int total)>& progress = {},
                                      const std::function<bool()>& cancelled = {});

}  // namespace spanscope
