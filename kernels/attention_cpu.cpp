#include "kernels/attention_cpu.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <optional>

namespace spanscope {
namespace {

void checkInputs(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const SpanMask& mask) {
    TORCH_CHECK(q.dim() == 4 && k.dim() == 4 && v.dim() == 4, "span attention: q, k, v must be (B, H, T, D)");
    TORCH_CHECK(q.sizes() == k.sizes() && q.sizes() == v.sizes(), "span attention: q, k, v shapes differ: ",
                q.sizes(), " ", k.sizes(), " ", v.sizes());
    TORCH_CHECK(q.device() == k.device() && q.device() == v.device(), "span attention: q, k, v on different devices");
    TORCH_CHECK(q.is_floating_point(), "span attention: q must be a floating-point tensor");
    TORCH_CHECK(mask.kind == MaskKind::Full || mask.span > 0, "span attention: window/block span must be positive");
}

int64_t queryBlockSize(int64_t batchHeads, int64_t T, const SpanMask& mask, int64_t budget) {
    // keys per block ≈ reach + block; solve bq · (reach + bq) · BH ≈ budget.
    int64_t reach = mask.kind == MaskKind::Full ? T : std::min<int64_t>(T, mask.span * (mask.prevBlock ? 2 : 1));
    int64_t bq = budget / std::max<int64_t>(1, batchHeads * std::max<int64_t>(reach, 1));
    bq = std::clamp<int64_t>(bq, 16, 1024);
    // A block of bq queries scores bq + w - 1 keys of which w are attended: keep bq well below w.
    if (mask.kind == MaskKind::Window) bq = std::min(bq, std::max<int64_t>(32, mask.span / 4));
    // Block masks: one query block per attention block keeps every tile aligned to the blocks.
    if (mask.kind == MaskKind::Block && mask.span <= 1024) bq = mask.span;
    return std::min(bq, std::max<int64_t>(T, 1));
}

// Bin of each position in [lo, hi) among n bins; positions outside go to the extra bin n.
at::Tensor regionBins(const at::Tensor& pos, int64_t lo, int64_t hi, int64_t n) {
    auto bins = at::div((pos - lo) * n, hi - lo, "floor");
    return at::where((pos >= lo) & (pos < hi), bins, at::full_like(bins, n));
}

// Prefix sums of one block's per-row values along its keys, for sums over key ranges without
// scatter: with C[h, r, c] = Σ of p[h, r, 0..c] (fp64, so small bins do not drown in rounding),
// the sum over the keys at positions in (a, b] of row r is C up to b minus C up to a. p: (H, bq, bk)
// for queries [q0, q1) x the keys at positions pos (bk, ascending; a contiguous range for span
// attention, the keys any query attends for SparseK).
struct BlockPrefix {
    at::Tensor sum;  // (H, bq, bk) double
    at::Tensor pos;  // (bk) long
    int64_t H, bq, bk, q0;

    BlockPrefix(const at::Tensor& p, int64_t q0_, const at::Tensor& pos_)
        : sum(p.to(at::kDouble).cumsum(-1)), pos(pos_), H(p.size(0)), bq(p.size(1)), bk(p.size(2)), q0(q0_) {}

    // Per row, the sum over the keys at positions <= x (x: (bq, n) or (1, n) long): (H, bq, n).
    at::Tensor upTo(const at::Tensor& x) const {
        auto full = x.expand({bq, x.size(1)}).contiguous();
        auto col = at::searchsorted(pos, full, /*out_int32=*/false, /*right=*/true) - 1;  // -1: no key that early
        auto gathered = sum.gather(2, col.clamp(0, bk - 1).unsqueeze(0).expand({H, bq, x.size(1)}));
        return gathered * (col >= 0).to(at::kDouble).unsqueeze(0);
    }
    at::Tensor rows() const { return at::arange(q0, q0 + bq, sum.options().dtype(at::kLong)).unsqueeze(1); }
    // Per row, the sum over each log2-distance bin (kernels/span_mask.h): (H, bq, NB).
    at::Tensor distanceBins() const {
        auto thresholds = at::empty({1, kNumDistanceBins + 1}, sum.options().dtype(at::kLong));  // D_b; D_NB past all
        for (int64_t b = 0; b <= kNumDistanceBins; ++b) thresholds[0][b] = b == 0 ? 0 : (int64_t{1} << (b - 1));
        auto atLeast = upTo(rows() - thresholds);  // (H, bq, NB+1): sum at distance >= D_b
        return atLeast.slice(2, 0, kNumDistanceBins) - atLeast.slice(2, 1, kNumDistanceBins + 1);
    }
    // Per row, the sum over each of the Pk key bins of [mapK0, mapK1) (bin b covers
    // [start_b, start_{b+1}), start_b = mapK0 + ceil(b·len/Pk)), plus a last zero column: (H, bq, Pk+1).
    at::Tensor keyBins(int64_t mapK0, int64_t mapK1, int64_t Pk) const {
        const int64_t len = mapK1 - mapK0;
        auto starts = at::empty({1, Pk + 1}, sum.options().dtype(at::kLong));
        for (int64_t b = 0; b <= Pk; ++b) starts[0][b] = mapK0 + (b * len + Pk - 1) / Pk;
        auto edges = upTo(starts - 1);  // (H, bq, Pk+1)
        auto bins = at::zeros({H, bq, Pk + 1}, edges.options());
        bins.slice(2, 0, Pk).copy_(edges.slice(2, 1, Pk + 1) - edges.slice(2, 0, Pk));
        return bins;
    }
};

// The pooled map of both statistics accumulators: the region queries [q0, q1) x keys [k0, k1) of
// the options (−1 ends mean T) in Pq x Pk bins (0 without a map). Sums go into a (H, Pq+1, Pk+1)
// tensor whose last row and column collect what lies outside the region.
struct MapRegion {
    int64_t q0, q1, k0, k1, Pq = 0, Pk = 0;

    MapRegion(const AttentionStatsOptions& o, int64_t T)
        : q0(o.mapQ0), q1(o.mapQ1 < 0 ? T : o.mapQ1), k0(o.mapK0), k1(o.mapK1 < 0 ? T : o.mapK1) {
        TORCH_CHECK(0 <= q0 && q0 < q1 && q1 <= T && 0 <= k0 && k0 < k1 && k1 <= T,
                    "attention map region [", q0, ", ", q1, ") x [", k0, ", ", k1, ") is not inside 0..", T);
        if (o.poolSize > 0) {
            Pq = std::min(o.poolSize, q1 - q0);
            Pk = std::min(o.poolSize, k1 - k0);
        }
    }
    // Adds a block's per-row sums over the key bins at the rows' query bins.
    void add(at::Tensor& pooled, const BlockPrefix& prefix) const {
        if (Pq > 0 && prefix.q0 + prefix.bq > q0 && prefix.q0 < q1)
            pooled.index_add_(1, regionBins(prefix.rows().squeeze(1), q0, q1, Pq), prefix.keyBins(k0, k1, Pk).to(pooled.scalar_type()));
    }
    // The region's bins as means over each query bin's rows: (H, Pq, Pk).
    at::Tensor rowMeans(const at::Tensor& pooled) const {
        auto inside = pooled.slice(1, 0, Pq).slice(2, 0, Pk);
        if (Pq == 0) return inside;
        auto pos = at::arange(q0, q1, pooled.options().dtype(at::kLong));
        auto counts = at::bincount(regionBins(pos, q0, q1, Pq), {}, Pq).to(pooled.scalar_type()).clamp_min(1);
        return inside.div(counts.view({1, Pq, 1})).contiguous();
    }
};

struct StatsAccumulator {
    const AttentionStatsOptions& opt;
    int64_t T, H;
    at::Tensor binMass, entropy, distance, beyond, sink, beyondPerQuery, entropyPerQuery, pooled, rows;
    MapRegion map;

    StatsAccumulator(const AttentionStatsOptions& o, int64_t t, int64_t h, const at::TensorOptions& f)
        : opt(o), T(t), H(h), map(o, t) {
        auto d64 = f.dtype(at::kDouble);
        binMass = at::zeros({H, kNumDistanceBins}, d64);
        entropy = at::zeros({H}, d64);
        distance = at::zeros({H}, d64);
        beyond = at::zeros({H}, d64);
        sink = at::zeros({H}, d64);
        beyondPerQuery = at::zeros({T}, f);
        entropyPerQuery = at::zeros({T}, f);
        // One extra "outside the region" bin on each axis, dropped in finish().
        pooled = at::zeros({H, map.Pq + 1, map.Pk + 1}, f);
        rows = at::zeros({static_cast<int64_t>(opt.queryRows.size()), H, T}, f);
        for (int64_t r : opt.queryRows)
            TORCH_CHECK(r >= 0 && r < T, "attention rows: query position ", r, " is outside 0..", T - 1);
    }

    // p, logp: (H, bq, bk) probabilities and log-probabilities of queries [q0,q1) x the keys at
    // positions pos (bk, ascending; k0 the first).

    // Everything but the entropy comes from one prefix sum along the keys: with
    // C[h, r, c] = mass of query q0+r on keys k0..k0+c, the mass at distance >= D is
    // C[.., i - D - k0], a key bin's mass is a difference of two prefixes, and the mean distance
    // is i - sum_j p_ij j. Prefix sums in fp64, so small bins do not drown in rounding.
    void add(const at::Tensor& p, const at::Tensor& logp, int64_t q0, int64_t q1, int64_t k0, const at::Tensor& pos) {
        auto lopt = p.options().dtype(at::kLong);
        auto pd = p.to(at::kDouble);
        const BlockPrefix prefix(p, q0, pos);
        auto rowsI = prefix.rows();                                // (bq, 1)
        binMass += prefix.distanceBins().sum(1);
        auto ent = (p * logp.clamp_min(-1e30)).sum(-1).neg();     // (H, bq); masked keys have p = 0
        entropy += ent.sum(-1).to(at::kDouble);
        entropyPerQuery.slice(0, q0, q1).copy_(ent.mean(0));
        auto keyPos = pos.to(at::kDouble).unsqueeze(1);  // (bk, 1)
        distance += (rowsI.to(at::kDouble).squeeze(1).unsqueeze(0) - at::matmul(pd, keyPos).squeeze(-1)).sum(-1);
        if (opt.beyondSpan > 0) {
            auto pb = prefix.upTo(rowsI - opt.beyondSpan).squeeze(-1);  // (H, bq)
            beyond += pb.sum(-1);
            beyondPerQuery.slice(0, q0, q1).copy_(pb.mean(0));
        }
        if (k0 < opt.sinkTokens) {
            sink += prefix.upTo(at::full({1, 1}, opt.sinkTokens - 1, lopt)).sum({1, 2});
        }
        map.add(pooled, prefix);
        for (size_t r = 0; r < opt.queryRows.size(); ++r) {
            const int64_t row = opt.queryRows[r];
            if (row >= q0 && row < q1) rows[static_cast<int64_t>(r)].index_copy_(1, pos, p.select(1, row - q0));
        }
    }

    AttentionStats finish() {
        return {binMass, entropy, distance, beyond, sink, beyondPerQuery, entropyPerQuery, map.rowMeans(pooled), rows};
    }
};

// The blocked loop shared by span and SparseK attention. For the query block [q0, q1):
// keys(q0, q1) gives the keys any of its queries may attend — a contiguous range [k0, q1) (pos
// undefined), or the ascending positions pos (SparseK: the window range and the keys any head of
// any query selected, so the work follows the selections, not the document's length) — and
// restrict(s, q0, q1, keys) turns the block's scaled scores s (B, H, bq, bk) into the attended
// logits in place: −inf where not attended, plus log m for gated keys (SparseK).
struct BlockKeys {
    int64_t k0 = 0;  // the first position
    at::Tensor pos;  // (bk) long on the tensors' device; undefined: [k0, q1)
};
using KeysFn = std::function<BlockKeys(int64_t q0, int64_t q1)>;
using RestrictFn = std::function<void(at::Tensor& s, int64_t q0, int64_t q1, const BlockKeys& keys)>;

std::tuple<at::Tensor, at::Tensor> blockedAttention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                                    double scale, int64_t bq, const KeysFn& blockKeys,
                                                    const RestrictFn& restrict, StatsAccumulator* stats) {
    const int64_t B = q.size(0), H = q.size(1), T = q.size(2);
    auto qf = q.to(at::kFloat), kf = k.to(at::kFloat), vf = v.to(at::kFloat);
    auto out = at::empty(qf.sizes(), qf.options());
    auto lse = at::empty({B, H, T}, qf.options());
    for (int64_t q0 = 0; q0 < T; q0 += bq) {
        const int64_t q1 = std::min(T, q0 + bq);
        BlockKeys keys = blockKeys(q0, q1);
        at::Tensor ks, vs;
        if (keys.pos.defined()) {
            ks = kf.index_select(2, keys.pos);
            vs = vf.index_select(2, keys.pos);
        } else {
            ks = kf.slice(2, keys.k0, q1);
            vs = vf.slice(2, keys.k0, q1);
        }
        auto qs = qf.slice(2, q0, q1);
        auto s = at::matmul(qs, ks.transpose(-1, -2)).mul_(scale);  // (B, H, bq, bk)
        restrict(s, q0, q1, keys);
        auto rowLse = at::logsumexp(s, -1, /*keepdim=*/true);  // every row has key j = i, so finite
        auto logp = s - rowLse;
        auto p = logp.exp();
        out.slice(2, q0, q1).copy_(at::matmul(p, vs));
        lse.slice(2, q0, q1).copy_(rowLse.squeeze(-1));
        if (stats) {
            if (!keys.pos.defined()) keys.pos = at::arange(keys.k0, q1, qf.options().dtype(at::kLong));
            stats->add(p[0], logp[0], q0, q1, keys.k0, keys.pos);
        }
    }
    return {out.to(q.scalar_type()), lse};
}

std::tuple<at::Tensor, at::Tensor> spanBlockedAttention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                                        const SpanMask& mask, double scale, int64_t budget,
                                                        StatsAccumulator* stats) {
    checkInputs(q, k, v, mask);
    const int64_t bq = queryBlockSize(q.size(0) * q.size(1), q.size(2), mask, budget);
    auto restrict = [&](at::Tensor& s, int64_t q0, int64_t q1, const BlockKeys& keys) {
        s.masked_fill_(blockMask(mask, q0, q1, keys.k0, q1, s.options()).logical_not(), -std::numeric_limits<float>::infinity());
    };
    auto range = [&](int64_t q0, int64_t) { return BlockKeys{mask.firstKey(q0), at::Tensor()}; };
    return blockedAttention(q, k, v, scale, bq, range, restrict, stats);
}

// What the selections say (SparseKSelectionStats), accumulated block by block on the tensors'
// device from the block's selection mask — no per-query key lists on the host.
class SelectionAccumulator {
public:
    SelectionAccumulator(const AttentionStatsOptions& o, int64_t T, int64_t H, const at::TensorOptions& dev)
        : opt(o), H(H), map(o, T) {
        auto d = dev.dtype(at::kDouble);
        countBins = at::zeros({H, kNumDistanceBins}, d);
        maskBins = at::zeros({H, kNumDistanceBins}, d);
        keyPicks = at::zeros({T}, d);
        pooled = at::zeros({H, map.Pq + 1, map.Pk + 1}, d);
        pairs = at::zeros({2}, d);                   // selected, fractional
        rowKeys.assign(o.queryRows.size() * static_cast<size_t>(H), {});
        rowMask.assign(o.queryRows.size() * static_cast<size_t>(H), {});
    }

    // sel: (H, bq, bk) bool, the pairs selected beyond the window; m: (H, bq, bk) double, their
    // mask; queries [q0, q1) x the keys at positions pos (bk, ascending).
    void add(const at::Tensor& sel, const at::Tensor& m, int64_t q0, int64_t q1, const at::Tensor& pos) {
        auto selD = sel.to(at::kDouble);
        const BlockPrefix count(selD, q0, pos);
        countBins += count.distanceBins().sum(1);
        maskBins += BlockPrefix(m, q0, pos).distanceBins().sum(1);
        keyPicks.index_add_(0, pos, selD.sum(at::IntArrayRef{0, 1}));
        pairs[0] += selD.sum();
        pairs[1] += (sel & (m < 1)).sum().to(at::kDouble);
        map.add(pooled, count);
        for (size_t r = 0; r < opt.queryRows.size(); ++r) {
            const int64_t row = opt.queryRows[r];
            if (row < q0 || row >= q1) continue;
            for (int64_t h = 0; h < H; ++h) {
                auto idx = at::nonzero(sel[h][row - q0]).flatten();  // ascending
                auto keys = pos.index_select(0, idx).to(at::kCPU, at::kInt);
                auto mask = m[h][row - q0].index_select(0, idx).to(at::kCPU, at::kFloat);
                auto& rk = rowKeys[r * static_cast<size_t>(H) + static_cast<size_t>(h)];
                auto& rm = rowMask[r * static_cast<size_t>(H) + static_cast<size_t>(h)];
                rk.insert(rk.end(), keys.data_ptr<int32_t>(), keys.data_ptr<int32_t>() + keys.numel());
                rm.insert(rm.end(), mask.data_ptr<float>(), mask.data_ptr<float>() + mask.numel());
            }
        }
    }

    void finish(SparseKSelectionStats& r) {
        auto toVec = [](const at::Tensor& t) {
            auto c = t.to(at::kCPU, at::kDouble).contiguous();
            return std::vector<double>(c.data_ptr<double>(), c.data_ptr<double>() + c.numel());
        };
        r.countBins = toVec(countBins);
        r.maskBins = toVec(maskBins);
        const std::vector<double> picks = toVec(keyPicks);
        r.keyPicks.resize(picks.size());
        for (size_t t = 0; t < picks.size(); ++t) r.keyPicks[t] = static_cast<float>(picks[t] / static_cast<double>(H));
        r.poolRows = map.Pq;
        r.poolCols = map.Pk;
        auto p = map.rowMeans(pooled).to(at::kCPU, at::kFloat).contiguous();
        r.pooled.assign(p.data_ptr<float>(), p.data_ptr<float>() + p.numel());
        r.rowKeys = std::move(rowKeys);
        r.rowMask = std::move(rowMask);
        const std::vector<double> n = toVec(pairs);
        r.selectedPairs = static_cast<int64_t>(n[0]);
        r.fractionalPairs = static_cast<int64_t>(n[1]);
    }

private:
    const AttentionStatsOptions& opt;
    int64_t H;
    MapRegion map;
    at::Tensor countBins, maskBins, keyPicks, pooled, pairs;
    std::vector<std::vector<int32_t>> rowKeys;
    std::vector<std::vector<float>> rowMask;
};

std::tuple<at::Tensor, at::Tensor> sparsekBlockedAttention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                                           const at::Tensor& u, double topK, int64_t window, double scale,
                                                           const AttentionStatsOptions& options, StatsAccumulator* stats,
                                                           SparseKSelectionStats* selStats) {
    checkInputs(q, k, v, SpanMask{MaskKind::Window, window, false});
    TORCH_CHECK(q.size(0) == 1, "sparsek attention: one sequence at a time (B = 1), got ", q.sizes());
    const int64_t H = q.size(1), T = q.size(2);
    TORCH_CHECK(u.dim() == 3 && u.size(0) == 1 && u.size(1) == H && u.size(2) == T,
                "sparsek attention: key scores u must be (1, H, T) = (1, ", H, ", ", T, "), got ", u.sizes());
    TORCH_CHECK(topK >= 0 && window >= 1, "sparsek attention: need k >= 0 and w >= 1, got ", topK, " and ", window);
    // options.queryRows were checked by the StatsAccumulator (the only caller that has rows).
    const int64_t bq = queryBlockSize(H, T, SpanMask{}, options.blockElements);
    // The exact selection on the host gives tau per query and each query block's first selected
    // key; the mask itself, m_ij = clip(u_j - tau_i, 0, 1) for j <= i - w, is rebuilt per block on
    // the device (the same numbers: u and tau in double).
    auto uh = u.to(at::kCPU, at::kFloat).contiguous();
    std::vector<SparseKSelection> sel(static_cast<size_t>(H));
    at::parallel_for(0, H, 1, [&](int64_t h0, int64_t h1) {
        for (int64_t h = h0; h < h1; ++h)
            sel[static_cast<size_t>(h)] = sparsek_select_cpu(uh.data_ptr<float>() + h * T, T, topK, window, false, bq);
    });
    auto tauHost = at::empty({H, T}, at::kDouble);
    for (int64_t h = 0; h < H; ++h)
        std::copy(sel[static_cast<size_t>(h)].tau.begin(), sel[static_cast<size_t>(h)].tau.end(), tauHost.data_ptr<double>() + h * T);
    auto dev = q.options();
    auto tau = tauHost.to(dev.device());
    auto ud = u[0].to(dev.device(), at::kDouble);  // (H, T)
    std::optional<SelectionAccumulator> selAcc;
    if (selStats) selAcc.emplace(options, T, H, dev);
    const SpanMask local{MaskKind::Window, window, false};
    // The block's keys: its window range and every key any head selected for any of its queries
    // (the selection's per-block lists), merged on the host.
    auto keysOf = [&](int64_t q0, int64_t q1) {
        const auto b = static_cast<size_t>(q0 / bq);
        std::vector<int64_t> pos;
        for (const SparseKSelection& s : sel)
            pos.insert(pos.end(), s.blockKeys.begin() + s.blockOffsets[b], s.blockKeys.begin() + s.blockOffsets[b + 1]);
        for (int64_t j = local.firstKey(q0); j < q1; ++j) pos.push_back(j);
        std::sort(pos.begin(), pos.end());
        pos.erase(std::unique(pos.begin(), pos.end()), pos.end());
        auto host = at::from_blob(pos.data(), {static_cast<int64_t>(pos.size())}, at::kLong);
        return BlockKeys{pos.front(), host.clone().to(dev.device())};  // clone: `pos` goes away (.to on the CPU would not copy)
    };
    auto restrict = [&](at::Tensor& s, int64_t q0, int64_t q1, const BlockKeys& keys) {
        auto lopt = s.options().dtype(at::kLong);
        auto i = at::arange(q0, q1, lopt).unsqueeze(1), j = keys.pos.unsqueeze(0);  // (bq, 1), (1, bk)
        auto inWindow = (j <= i) & ((i - j) < window);
        auto z = ud.index_select(1, keys.pos).unsqueeze(1), t = tau.slice(1, q0, q1).unsqueeze(2);  // (H, 1, bk), (H, bq, 1)
        auto selected = (j <= i - window).unsqueeze(0) & (z > t);                                   // (H, bq, bk)
        auto m = at::where(selected, at::clamp_max(z - t, 1.0), at::zeros({}, z.options()));
        const double inf = std::numeric_limits<double>::infinity();
        auto bias = at::where(inWindow.unsqueeze(0), at::zeros({}, m.options()),
                              at::where(selected, at::log(m), at::full({}, -inf, m.options())));
        s.add_(bias.to(s.scalar_type()).unsqueeze(0));
        if (selAcc) selAcc->add(selected, m, q0, q1, keys.pos);
    };
    auto result = blockedAttention(q, k, v, scale, bq, keysOf, restrict, stats);
    if (selAcc) selAcc->finish(*selStats);
    return result;
}

}  // namespace

at::Tensor blockMask(const SpanMask& mask, int64_t q0, int64_t q1, int64_t k0, int64_t k1, const at::TensorOptions& o) {
    auto i = at::arange(q0, q1, o.dtype(at::kLong)).unsqueeze(1);
    auto j = at::arange(k0, k1, o.dtype(at::kLong)).unsqueeze(0);
    auto allowed = j <= i;
    if (mask.kind == MaskKind::Window) allowed = allowed & ((i - j) < mask.span);
    if (mask.kind == MaskKind::Block) {
        auto bi = at::div(i, mask.span, "floor"), bj = at::div(j, mask.span, "floor");
        auto same = bj == bi;
        allowed = allowed & (mask.prevBlock ? (same | (bj == bi - 1)) : same);
    }
    return allowed;
}

std::tuple<at::Tensor, at::Tensor> span_attention_cpu(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                                      const SpanMask& mask, double scale) {
    return spanBlockedAttention(q, k, v, mask, scale, AttentionStatsOptions{}.blockElements, nullptr);
}

std::tuple<at::Tensor, at::Tensor, AttentionStats> span_attention_stats_cpu(
    const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const SpanMask& mask, double scale,
    const AttentionStatsOptions& options) {
    TORCH_CHECK(q.dim() == 4 && q.size(0) == 1, "attention statistics: expected one sequence (B = 1), got ", q.sizes());
    StatsAccumulator acc(options, q.size(2), q.size(1), q.options().dtype(at::kFloat));
    auto [out, lse] = spanBlockedAttention(q, k, v, mask, scale, options.blockElements, &acc);
    return {out, lse, acc.finish()};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> span_attention_backward_cpu(
    const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& out, const at::Tensor& lse,
    const at::Tensor& dout, const SpanMask& mask, double scale) {
    checkInputs(q, k, v, mask);
    TORCH_CHECK(out.sizes() == q.sizes() && dout.sizes() == q.sizes(), "span attention backward: out and dout must be ",
                q.sizes(), ", got ", out.sizes(), " and ", dout.sizes());
    TORCH_CHECK(lse.dim() == 3 && lse.size(0) == q.size(0) && lse.size(1) == q.size(1) && lse.size(2) == q.size(2),
                "span attention backward: lse must be (B, H, T), got ", lse.sizes());
    const int64_t B = q.size(0), H = q.size(1), T = q.size(2);
    auto qf = q.to(at::kFloat), kf = k.to(at::kFloat), vf = v.to(at::kFloat);
    auto of = out.to(at::kFloat), dof = dout.to(at::kFloat), lsef = lse.to(at::kFloat);
    auto dq = at::zeros_like(qf), dk = at::zeros_like(kf), dv = at::zeros_like(vf);
    // rowsum(dO ∘ O): the softmax backward's per-row term.
    auto delta = (dof * of).sum(-1);  // (B, H, T)
    const int64_t bq = queryBlockSize(B * H, T, mask, AttentionStatsOptions{}.blockElements);
    for (int64_t q0 = 0; q0 < T; q0 += bq) {
        const int64_t q1 = std::min(T, q0 + bq), k0 = mask.firstKey(q0), k1 = q1;
        auto allowed = blockMask(mask, q0, q1, k0, k1, qf.options());
        auto qb = qf.slice(2, q0, q1), kb = kf.slice(2, k0, k1), vb = vf.slice(2, k0, k1);
        auto dob = dof.slice(2, q0, q1);
        auto s = at::matmul(qb, kb.transpose(-1, -2)) * scale;                  // (B, H, bq, bk)
        auto p = at::exp(s - lsef.slice(2, q0, q1).unsqueeze(-1)).masked_fill(allowed.logical_not(), 0.0);
        dv.slice(2, k0, k1).add_(at::matmul(p.transpose(-1, -2), dob));
        auto dp = at::matmul(dob, vb.transpose(-1, -2));
        auto ds = p * (dp - delta.slice(2, q0, q1).unsqueeze(-1));
        dq.slice(2, q0, q1).add_(at::matmul(ds, kb) * scale);
        dk.slice(2, k0, k1).add_(at::matmul(ds.transpose(-1, -2), qb) * scale);
    }
    return {dq.to(q.scalar_type()), dk.to(k.scalar_type()), dv.to(v.scalar_type())};
}

std::tuple<at::Tensor, at::Tensor> naive_attention_reference(const at::Tensor& q, const at::Tensor& k,
                                                             const at::Tensor& v, const SpanMask& mask, double scale) {
    checkInputs(q, k, v, mask);
    const int64_t T = q.size(2);
    auto qf = q.to(at::kDouble), kf = k.to(at::kDouble), vf = v.to(at::kDouble);
    auto s = at::matmul(qf, kf.transpose(-1, -2)) * scale;
    auto allowed = at::empty({T, T}, at::kBool);
    auto a = allowed.accessor<bool, 2>();
    for (int64_t i = 0; i < T; ++i)
        for (int64_t j = 0; j < T; ++j) a[i][j] = mask.allows(i, j);
    s = s.masked_fill(allowed.logical_not().to(s.device()), -std::numeric_limits<double>::infinity());
    auto p = at::softmax(s, -1);
    return {at::matmul(p, vf), at::logsumexp(s, -1)};
}

std::tuple<at::Tensor, at::Tensor> sparsek_attention_aten(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                                          const at::Tensor& u, double topK, int64_t window, double scale) {
    AttentionStatsOptions none;
    return sparsekBlockedAttention(q, k, v, u, topK, window, scale, none, nullptr, nullptr);
}

std::tuple<at::Tensor, at::Tensor, AttentionStats> sparsek_attention_stats_aten(
    const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& u, double topK, int64_t window,
    double scale, const AttentionStatsOptions& options, SparseKSelectionStats& selections) {
    TORCH_CHECK(q.dim() == 4 && q.size(0) == 1, "attention statistics: expected one sequence (B = 1), got ", q.sizes());
    StatsAccumulator acc(options, q.size(2), q.size(1), q.options().dtype(at::kFloat));
    auto [out, lse] = sparsekBlockedAttention(q, k, v, u, topK, window, scale, options, &acc, &selections);
    return {out, lse, acc.finish()};
}

}  // namespace spanscope
