#include "engine/analysis.h"

#include <malloc.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <mutex>
#include <tuple>

#include "engine/errors.h"
#include "engine/model_impl.h"
#include "kernels/attention_cpu.h"
#ifdef SPANSCOPE_HAVE_CUDA
#include "kernels/ops.h"
#endif

namespace spanscope {
namespace {

using Clock = std::chrono::steady_clock;

double secondsSince(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

std::vector<float> toVector(const at::Tensor& t) {
    auto c = t.to(at::kCPU, at::kFloat).contiguous();
    return std::vector<float>(c.data_ptr<float>(), c.data_ptr<float>() + c.numel());
}

std::vector<double> toDoubles(const at::Tensor& t) {
    auto c = t.to(at::kCPU, at::kDouble).contiguous();
    return std::vector<double>(c.data_ptr<double>(), c.data_ptr<double>() + c.numel());
}

int64_t defaultBeyondSpan(const LayerPattern& p) {
    int64_t reach = p.sparseSpec().reach();
    return reach > 0 ? reach : 1024;
}

void summarizeHeads(LayerAnalysis& la, const AttentionStats& s, int64_t T) {
    const double n = static_cast<double>(T);
    auto bins = toDoubles(s.binMass), ent = toDoubles(s.entropy), dist = toDoubles(s.distance),
         beyond = toDoubles(s.beyondMass), sink = toDoubles(s.sinkMass);
    const size_t H = ent.size();
    la.headMean.binMass.assign(kNumDistanceBins, 0.0);
    for (size_t h = 0; h < H; ++h) {
        HeadStats hs;
        hs.binMass.assign(bins.begin() + static_cast<std::ptrdiff_t>(h * kNumDistanceBins),
                          bins.begin() + static_cast<std::ptrdiff_t>((h + 1) * kNumDistanceBins));
        for (auto& b : hs.binMass) b /= n;
        hs.entropy = ent[h] / n;
        hs.meanDistance = dist[h] / n;
        hs.beyondMass = beyond[h] / n;
        hs.sinkMass = sink[h] / n;
        for (size_t b = 0; b < hs.binMass.size(); ++b) la.headMean.binMass[b] += hs.binMass[b] / static_cast<double>(H);
        la.headMean.entropy += hs.entropy / static_cast<double>(H);
        la.headMean.meanDistance += hs.meanDistance / static_cast<double>(H);
        la.headMean.beyondMass += hs.beyondMass / static_cast<double>(H);
        la.headMean.sinkMass += hs.sinkMass / static_cast<double>(H);
        la.heads.push_back(std::move(hs));
    }
}

void fillLoss(std::vector<float> loss, double& meanLoss, double& perplexity, std::vector<float>& out) {
    out = std::move(loss);
    meanLoss = meanLossFrom(out, 0);
    perplexity = std::exp(meanLoss);
}

// Everything besides the layer specs that a layer's statistics depend on.
struct StatsKey {
    bool withStats = false;
    int64_t beyondSpan = 0, sinkTokens = 0, poolSize = 0;
    std::vector<int64_t> queryRows;
    int64_t mapQ0 = 0, mapQ1 = 0, mapK0 = 0, mapK1 = 0;
    auto tie() const {
        return std::tie(withStats, beyondSpan, sinkTokens, poolSize, queryRows, mapQ0, mapQ1, mapK0, mapK1);
    }
    bool operator==(const StatsKey& o) const { return tie() == o.tie(); }
};

}  // namespace

// Entry i holds layer i: its spec, its result and the hidden state (1, T, C) after it; the
// entries are always a prefix of the layers of the last analysis.
struct AnalysisCache::State {
    int64_t maxBytes = 0;
    const ModelImpl* model = nullptr;
    std::vector<int32_t> tokens;
    StatsKey stats;
    std::vector<LayerSpec> specs;
    std::vector<LayerAnalysis> layers;
    std::vector<at::Tensor> hidden;
    int reused = 0;

    void reset(const ModelImpl* m, const std::vector<int32_t>& t, const StatsKey& k) {
        model = m;
        tokens = t;
        stats = k;
        truncate(0);
    }
    void truncate(size_t n) {
        specs.resize(std::min(n, specs.size()));
        layers.resize(specs.size());
        hidden.resize(specs.size());
    }
    // Bottom layers [0, n) of `pattern` that can be taken from here (truncates the rest).
    int usable(const ModelImpl* m, const std::vector<int32_t>& t, const StatsKey& k, const LayerPattern& pattern) {
        if (m != model || !(k == stats) || t != tokens) {
            reset(m, t, k);
            return 0;
        }
        size_t n = 0;
        while (n < specs.size() && n < pattern.layers.size() && specs[n] == pattern.layers[n]) ++n;
        truncate(n);
        return static_cast<int>(n);
    }
    void add(const LayerSpec& spec, const LayerAnalysis& la, const at::Tensor& x) {
        const int64_t bytes = x.numel() * static_cast<int64_t>(x.element_size());
        if (static_cast<int64_t>(hidden.size() + 1) * bytes > maxBytes) return;
        specs.push_back(spec);
        layers.push_back(la);
        hidden.push_back(x);
    }
};

AnalysisCache::AnalysisCache(int64_t maxBytes) : m_state(std::make_unique<State>()) { m_state->maxBytes = maxBytes; }
AnalysisCache::~AnalysisCache() = default;
void AnalysisCache::clear() {
    m_state->model = nullptr;
    m_state->tokens.clear();
    m_state->truncate(0);
    m_state->reused = 0;
}
int AnalysisCache::cachedLayers() const { return static_cast<int>(m_state->specs.size()); }
int AnalysisCache::reusedLayers() const { return m_state->reused; }

void reuseHostMemoryForLargeTensors() {
    static std::once_flag once;
    std::call_once(once, [] {
#if defined(__GLIBC__)
        mallopt(M_ARENA_MAX, 1);
        mallopt(M_MMAP_THRESHOLD, 1 << 30);  // fixed: no mmap below 1 GiB
        mallopt(M_TRIM_THRESHOLD, 1 << 30);
#endif
    });
}

double meanLossFrom(const std::vector<float>& tokenLoss, int64_t from) {
    double sum = 0;
    int64_t n = 0;
    for (size_t i = static_cast<size_t>(std::max<int64_t>(from, 0)); i < tokenLoss.size(); ++i, ++n) sum += tokenLoss[i];
    return n ? sum / static_cast<double>(n) : std::numeric_limits<double>::quiet_NaN();
}

AnalysisResult analyze(const Model& model, const std::vector<int32_t>& tokens, const AnalysisOptions& options) {
    const ModelImpl& m = model.impl();
    const auto& c = m.config;
    if (static_cast<int64_t>(options.pattern.layers.size()) != c.numLayers)
        throw InputError("pattern has " + std::to_string(options.pattern.layers.size()) + " layers but the model has " +
                         std::to_string(c.numLayers));
    if (tokens.size() < 2) throw InputError("document needs at least 2 tokens");
    if (options.poolSize < 0 || options.poolSize > 1024) throw InputError("pooled map size must be in 0..1024");
    reuseHostMemoryForLargeTensors();
    const auto t0 = Clock::now();
    at::InferenceMode guard;
    const int64_t T = static_cast<int64_t>(tokens.size());

    AnalysisResult r;
    r.pattern = options.pattern;
    r.beyondSpan = options.beyondSpan > 0 ? options.beyondSpan : defaultBeyondSpan(options.pattern);
    r.sinkTokens = options.sinkTokens;
    r.queryRows = options.queryRows;
    r.numTokens = T;
    r.device = m.device.str();
    r.cost = patternCost(options.pattern, {T, c.numHeads, c.headDim(), 2, 128});
    r.layers.resize(static_cast<size_t>(c.numLayers));

    AttentionStatsOptions so;
    so.beyondSpan = r.beyondSpan;
    so.sinkTokens = options.sinkTokens;
    so.poolSize = options.poolSize;
    so.queryRows = options.queryRows;
    so.mapQ0 = options.mapQ0;
    so.mapQ1 = options.mapQ1;
    so.mapK0 = options.mapK0;
    so.mapK1 = options.mapK1;
    r.mapQ0 = options.mapQ0;
    r.mapQ1 = options.mapQ1 < 0 ? T : options.mapQ1;
    r.mapK0 = options.mapK0;
    r.mapK1 = options.mapK1 < 0 ? T : options.mapK1;
    if (!(0 <= r.mapQ0 && r.mapQ0 < r.mapQ1 && r.mapQ1 <= T && 0 <= r.mapK0 && r.mapK0 < r.mapK1 && r.mapK1 <= T))
        throw InputError("attention map region is outside the document's " + std::to_string(T) + " tokens");
    const double scale = 1.0 / std::sqrt(static_cast<double>(c.headDim()));
    AttentionFn plain = patternAttention(options.pattern, m);
    auto layerStart = Clock::now();

    AttentionFn attention = [&](int l, const at::Tensor& q, const at::Tensor& k, const at::Tensor& v) -> at::Tensor {
        LayerAnalysis& la = r.layers[static_cast<size_t>(l)];
        la.spec = options.pattern.layers[static_cast<size_t>(l)];
        la.cost = r.cost.layers[static_cast<size_t>(l)];
        if (!options.withStats) return plain(l, q, k, v);
        at::Tensor out, lse;
        AttentionStats s;
        if (la.spec.kind == AttentionKind::SparseK) {
            std::tie(out, lse, s) = sparsek_attention_stats_aten(q, k, v, sparsekKeyScores(m, l, v),
                                                                 static_cast<double>(la.spec.topK), la.spec.span, scale, so,
                                                                 la.selections);
            for (auto* bins : {&la.selections.countBins, &la.selections.maskBins})
                for (double& b : *bins) b /= static_cast<double>(T);
        } else {
            std::tie(out, lse, s) =
#ifdef SPANSCOPE_HAVE_CUDA
                span_attention_cuda_supports(q, k, v) ? span_attention_stats_cuda(q, k, v, la.spec.mask(), scale, so) :
#endif
                                                        span_attention_stats_cpu(q, k, v, la.spec.mask(), scale, so);
        }
        summarizeHeads(la, s, T);
        la.poolRows = s.pooled.size(1);
        la.poolCols = s.pooled.size(2);
        la.pooled = toVector(s.pooled);
        la.beyondPerToken = toVector(s.beyondPerQuery);
        la.entropyPerToken = toVector(s.entropyPerQuery);
        la.rows = toVector(s.rows);
        return out.to(q.scalar_type());
    };
    // Layers [0, first) come from the cache: same model, tokens, statistics options and specs.
    AnalysisCache::State* cache = options.cache ? &options.cache->state() : nullptr;
    int first = 0;
    if (cache) {
        StatsKey key{options.withStats, r.beyondSpan, options.sinkTokens, options.poolSize, options.queryRows,
                     r.mapQ0, r.mapQ1, r.mapK0, r.mapK1};
        first = cache->usable(&m, tokens, key, options.pattern);
        cache->reused = first;
        for (int l = 0; l < first; ++l) r.layers[static_cast<size_t>(l)] = cache->layers[static_cast<size_t>(l)];
    }
    auto after = [&](int l, const at::Tensor& x) {
        LayerAnalysis& la = r.layers[static_cast<size_t>(l)];
        la.seconds = secondsSince(layerStart);
        if (cache && static_cast<int>(cache->specs.size()) == l) cache->add(la.spec, la, x);
        layerStart = Clock::now();
        if (options.progress) options.progress(l + 1, static_cast<int>(c.numLayers));
    };
    at::Tensor x = runLayers(m, first > 0 ? cache->hidden[static_cast<size_t>(first) - 1] : embedTokens(m, tokens), first,
                             static_cast<int>(c.numLayers), attention, options.cancelled, after);
    fillLoss(toVector(nextTokenLoss(m, x, tokens)), r.meanLoss, r.perplexity, r.tokenLoss);
    r.seconds = secondsSince(t0);
    return r;
}

SelectionSummary summarizeSelections(const LayerAnalysis& la, int mostPicked) {
    SelectionSummary s;
    const SparseKSelectionStats& sel = la.selections;
    if (sel.countBins.empty()) return s;
    s.present = true;
    const size_t H = sel.heads();
    s.countBins.assign(static_cast<size_t>(kNumDistanceBins), 0.0);
    for (size_t h = 0; h < H; ++h)
        for (size_t b = 0; b < static_cast<size_t>(kNumDistanceBins); ++b) {
            const double c = sel.countBins[h * static_cast<size_t>(kNumDistanceBins) + b] / static_cast<double>(H);
            s.countBins[b] += c;
            s.selectedPerQuery += c;
            s.maskPerQuery += sel.maskBins[h * static_cast<size_t>(kNumDistanceBins) + b] / static_cast<double>(H);
        }
    s.fractionalShare = sel.selectedPairs ? static_cast<double>(sel.fractionalPairs) / static_cast<double>(sel.selectedPairs) : 0.0;
    double seen = 0;
    for (size_t b = 0; b < s.countBins.size(); ++b) {
        seen += s.countBins[b];
        if (seen >= 0.5 * s.selectedPerQuery) {
            s.medianBin = static_cast<int64_t>(b);
            break;
        }
    }
    std::vector<int64_t> order(sel.keyPicks.size());
    for (size_t j = 0; j < order.size(); ++j) order[j] = static_cast<int64_t>(j);
    const size_t n = std::min(order.size(), static_cast<size_t>(std::max(mostPicked, 0)));
    std::partial_sort(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(n), order.end(), [&](int64_t a, int64_t b) {
        return sel.keyPicks[static_cast<size_t>(a)] > sel.keyPicks[static_cast<size_t>(b)];
    });
    for (size_t i = 0; i < n && sel.keyPicks[static_cast<size_t>(order[i])] > 0; ++i) s.mostPicked.push_back(order[i]);
    return s;
}

std::vector<SweepPoint> sweepBoundary(const Model& model, const std::vector<int32_t>& tokens, const LayerSpec& sparse,
                                      const std::function<void(int, int)>& progress,
                                      const std::function<bool()>& cancelled) {
    const ModelImpl& m = model.impl();
    const int L = static_cast<int>(m.config.numLayers);
    if (sparse.kind == AttentionKind::Full) throw InputError("sweep: the sparse kind must not be full");
    if (tokens.size() < 2) throw InputError("document needs at least 2 tokens");
    reuseHostMemoryForLargeTensors();
    at::InferenceMode guard;
    const int64_t T = static_cast<int64_t>(tokens.size());
    const int total = L + L * (L + 1) / 2;
    int done = 0;
    auto step = [&]() { if (progress) progress(++done, total); };

    // One all-full pass, keeping the hidden state entering every layer.
    LayerPattern allFull = masformerPattern(L, L, sparse);
    std::vector<at::Tensor> entering(static_cast<size_t>(L) + 1);
    entering[0] = embedTokens(m, tokens);
    runLayers(m, entering[0], 0, L, patternAttention(allFull, m), cancelled, [&](int l, const at::Tensor& x) {
        entering[static_cast<size_t>(l) + 1] = x;
        step();
    });
    std::vector<SweepPoint> points(static_cast<size_t>(L) + 1);
    for (int l = L; l >= 0; --l) {
        LayerPattern p = masformerPattern(L, l, sparse);
        at::Tensor x = runLayers(m, entering[static_cast<size_t>(l)], l, L, patternAttention(p, m), cancelled,
                                 [&](int, const at::Tensor&) { step(); });
        SweepPoint& sp = points[static_cast<size_t>(l)];
        sp.boundary = l;
        sp.relativeCost = patternCost(p, {T, m.config.numHeads, m.config.headDim(), 2, 128}).relativeCost;
        fillLoss(toVector(nextTokenLoss(m, x, tokens)), sp.meanLoss, sp.perplexity, sp.tokenLoss);
    }
    return points;
}

}  // namespace spanscope
