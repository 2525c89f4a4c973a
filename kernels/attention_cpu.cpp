#include "kernels/attention_cpu.h"

#include <ATen/ATen.h>

#include <algorithm>
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

// Boolean (bq, bk) mask of query rows [q0, q1) against key columns [k0, k1).
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

int64_t queryBlockSize(int64_t batchHeads, int64_t T, const SpanMask& mask, int64_t budget) {
    // keys per block ≈ reach + block; solve bq · (reach + bq) · BH ≈ budget.
    int64_t reach = mask.kind == MaskKind::Full ? T : std::min<int64_t>(T, mask.span * (mask.prevBlock ? 2 : 1));
    int64_t bq = budget / std::max<int64_t>(1, batchHeads * std::max<int64_t>(reach, 1));
    bq = std::clamp<int64_t>(bq, 16, 1024);
    return std::min(bq, std::max<int64_t>(T, 1));
}

struct StatsAccumulator {
    const AttentionStatsOptions& opt;
    int64_t T, H, P;
    at::Tensor lut, binMass, entropy, distance, beyond, sink, beyondPerQuery, entropyPerQuery, pooled, rows;

    int64_t mapQ0, mapQ1, mapK0, mapK1, Pq, Pk;  // map region and its bins

    StatsAccumulator(const AttentionStatsOptions& o, int64_t t, int64_t h, const at::TensorOptions& f)
        : opt(o), T(t), H(h), P(o.poolSize) {
        mapQ0 = o.mapQ0;
        mapQ1 = o.mapQ1 < 0 ? T : o.mapQ1;
        mapK0 = o.mapK0;
        mapK1 = o.mapK1 < 0 ? T : o.mapK1;
        TORCH_CHECK(0 <= mapQ0 && mapQ0 < mapQ1 && mapQ1 <= T && 0 <= mapK0 && mapK0 < mapK1 && mapK1 <= T,
                    "attention map region [", mapQ0, ", ", mapQ1, ") x [", mapK0, ", ", mapK1, ") is not inside 0..", T);
        Pq = std::min(P, mapQ1 - mapQ0);
        Pk = std::min(P, mapK1 - mapK0);
        std::vector<int64_t> bins(static_cast<size_t>(T));
        for (int64_t d = 0; d < T; ++d) bins[static_cast<size_t>(d)] = distanceBin(d);
        lut = at::tensor(bins, f.dtype(at::kLong).device(at::kCPU)).to(f.device());
        auto d64 = f.dtype(at::kDouble);
        binMass = at::zeros({H, kNumDistanceBins}, d64);
        entropy = at::zeros({H}, d64);
        distance = at::zeros({H}, d64);
        beyond = at::zeros({H}, d64);
        sink = at::zeros({H}, d64);
        beyondPerQuery = at::zeros({T}, f);
        entropyPerQuery = at::zeros({T}, f);
        // One extra "outside the region" bin on each axis, dropped in finish().
        pooled = at::zeros({H, std::max<int64_t>(Pq, 0) + 1, std::max<int64_t>(Pk, 0) + 1}, f);
        rows = at::zeros({static_cast<int64_t>(opt.queryRows.size()), H, T}, f);
        for (int64_t r : opt.queryRows)
            TORCH_CHECK(r >= 0 && r < T, "attention rows: query position ", r, " is outside 0..", T - 1);
    }

    // p, logp: (H, bq, bk) probabilities and log-probabilities of queries [q0,q1) x keys [k0,k1).
    // Bin of each position in [lo, hi) among n bins; positions outside go to the extra bin n.
    static at::Tensor regionBins(const at::Tensor& pos, int64_t lo, int64_t hi, int64_t n) {
        auto bins = at::div((pos - lo) * n, hi - lo, "floor");
        return at::where((pos >= lo) & (pos < hi), bins, at::full_like(bins, n));
    }

    void add(const at::Tensor& p, const at::Tensor& logp, int64_t q0, int64_t q1, int64_t k0, int64_t k1) {
        auto lopt = p.options().dtype(at::kLong);
        auto i = at::arange(q0, q1, lopt).unsqueeze(1);
        auto j = at::arange(k0, k1, lopt).unsqueeze(0);
        auto dist = (i - j).clamp_min(0);  // (bq, bk); p is 0 where j > i
        auto bins = lut.index_select(0, dist.flatten()).unsqueeze(0).expand({H, -1});
        auto flatP = p.reshape({H, -1});
        binMass += at::zeros({H, kNumDistanceBins}, p.options()).scatter_add_(1, bins, flatP).to(at::kDouble);
        auto ent = at::where(p > 0, p * logp, at::zeros({}, p.options())).sum(-1).neg();  // (H, bq)
        entropy += ent.sum(-1).to(at::kDouble);
        entropyPerQuery.slice(0, q0, q1).copy_(ent.mean(0));
        distance += (p * dist.to(p.scalar_type())).sum({1, 2}).to(at::kDouble);
        if (opt.beyondSpan > 0) {
            auto pb = (p * (dist >= opt.beyondSpan).to(p.scalar_type())).sum(-1);  // (H, bq)
            beyond += pb.sum(-1).to(at::kDouble);
            beyondPerQuery.slice(0, q0, q1).copy_(pb.mean(0));
        }
        if (k0 < opt.sinkTokens) {
            int64_t end = std::min(k1, opt.sinkTokens);
            sink += p.slice(2, 0, end - k0).sum({1, 2}).to(at::kDouble);
        }
        if (P > 0 && q1 > mapQ0 && q0 < mapQ1) {
            auto queryBin = regionBins(i.squeeze(1), mapQ0, mapQ1, Pq);
            auto keyBin = regionBins(j.squeeze(0), mapK0, mapK1, Pk);
            auto pk = at::zeros({H, q1 - q0, Pk + 1}, p.options()).index_add_(2, keyBin, p);
            pooled.index_add_(1, queryBin, pk);
        }
        for (size_t r = 0; r < opt.queryRows.size(); ++r) {
            int64_t pos = opt.queryRows[r];
            if (pos >= q0 && pos < q1) rows[static_cast<int64_t>(r)].slice(1, k0, k1).copy_(p.select(1, pos - q0));
        }
    }

    AttentionStats finish() {
        pooled = pooled.slice(1, 0, std::max<int64_t>(Pq, 0)).slice(2, 0, std::max<int64_t>(Pk, 0));
        if (P > 0) {
            auto pos = at::arange(mapQ0, mapQ1, pooled.options().dtype(at::kLong));
            auto counts = at::bincount(regionBins(pos, mapQ0, mapQ1, Pq), {}, Pq).to(pooled.scalar_type()).clamp_min(1);
            pooled = pooled.div(counts.view({1, Pq, 1})).contiguous();
        }
        return {binMass, entropy, distance, beyond, sink, beyondPerQuery, entropyPerQuery, pooled, rows};
    }
};

std::tuple<at::Tensor, at::Tensor> blockedAttention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                                    const SpanMask& mask, double scale, int64_t budget,
                                                    StatsAccumulator* stats) {
    checkInputs(q, k, v, mask);
    const int64_t B = q.size(0), H = q.size(1), T = q.size(2);
    auto qf = q.to(at::kFloat), kf = k.to(at::kFloat), vf = v.to(at::kFloat);
    auto out = at::empty(qf.sizes(), qf.options());
    auto lse = at::empty({B, H, T}, qf.options());
    const int64_t bq = queryBlockSize(B * H, T, mask, budget);
    for (int64_t q0 = 0; q0 < T; q0 += bq) {
        const int64_t q1 = std::min(T, q0 + bq);
        const int64_t k0 = mask.firstKey(q0), k1 = q1;
        auto qs = qf.slice(2, q0, q1), ks = kf.slice(2, k0, k1), vs = vf.slice(2, k0, k1);
        auto s = at::matmul(qs, ks.transpose(-1, -2)).mul_(scale);  // (B, H, bq, bk)
        auto allowed = blockMask(mask, q0, q1, k0, k1, qf.options());
        s.masked_fill_(allowed.logical_not(), -std::numeric_limits<float>::infinity());
        auto rowLse = at::logsumexp(s, -1, /*keepdim=*/true);  // every row has key j = i, so finite
        auto logp = s - rowLse;
        auto p = logp.exp();
        out.slice(2, q0, q1).copy_(at::matmul(p, vs));
        lse.slice(2, q0, q1).copy_(rowLse.squeeze(-1));
        if (stats) stats->add(p[0], logp[0], q0, q1, k0, k1);
    }
    return {out.to(q.scalar_type()), lse};
}

}  // namespace

std::tuple<at::Tensor, at::Tensor> span_attention_cpu(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                                      const SpanMask& mask, double scale) {
    return blockedAttention(q, k, v, mask, scale, AttentionStatsOptions{}.blockElements, nullptr);
}

std::tuple<at::Tensor, at::Tensor, AttentionStats> span_attention_stats_cpu(
    const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const SpanMask& mask, double scale,
    const AttentionStatsOptions& options) {
    TORCH_CHECK(q.dim() == 4 && q.size(0) == 1, "attention statistics: expected one sequence (B = 1), got ", q.sizes());
    StatsAccumulator acc(options, q.size(2), q.size(1), q.options().dtype(at::kFloat));
    auto [out, lse] = blockedAttention(q, k, v, mask, scale, options.blockElements, &acc);
    return {out, lse, acc.finish()};
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

}  // namespace spanscope
