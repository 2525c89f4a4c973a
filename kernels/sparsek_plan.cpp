#include "kernels/sparsek_plan.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <limits>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

#include "kernels/sparsek_attention_cpu.h"

namespace spanscope {

int64_t sparsek_window_pairs(int64_t T, int64_t window) {
    return T <= window ? T * (T + 1) / 2 : window * (window + 1) / 2 + (T - window) * window;
}

SparseKPlan sparsek_plan(const at::Tensor& u, double topK, int64_t window, int64_t blockRows, const at::Device& device) {
    TORCH_CHECK(u.dim() == 3, "sparsek plan: key scores u must be (B, H, T), got ", u.sizes());
    TORCH_CHECK(topK >= 0 && window >= 1 && blockRows >= 1, "sparsek plan: need k >= 0, w >= 1 and blockRows >= 1, got k = ",
                topK, ", w = ", window, ", blockRows = ", blockRows);
    const int64_t B = u.size(0), H = u.size(1), T = u.size(2), BH = B * H;
    TORCH_CHECK(T < std::numeric_limits<int32_t>::max(), "sparsek plan: T = ", T, " does not fit int32 key positions");
    const int64_t NB = (T + blockRows - 1) / blockRows;
    auto uh = u.to(at::kCPU, at::kFloat).contiguous();
    const float* up = uh.data_ptr<float>();
    std::vector<SparseKSelection> sels(static_cast<size_t>(BH));  // tau and block lists per (b, h)
    std::string error;  // the first selection error (bad scores), rethrown below
    std::mutex errorMutex;
    at::parallel_for(0, BH, 1, [&](int64_t s0, int64_t s1) {
        for (int64_t s = s0; s < s1; ++s) {
            try {
                sels[static_cast<size_t>(s)] = sparsek_select_cpu(up + s * T, T, topK, window, /*withKeys=*/false, blockRows);
            } catch (const std::invalid_argument& e) {
                const std::lock_guard<std::mutex> lock(errorMutex);
                if (error.empty()) error = e.what();
                return;
            }
        }
    });
    if (!error.empty()) TORCH_CHECK(false, "sparsek plan: ", error);
    int64_t total = 0;
    for (const SparseKSelection& sel : sels) total += static_cast<int64_t>(sel.blockKeys.size());
    TORCH_CHECK(total < std::numeric_limits<int32_t>::max(), "sparsek plan: ", total,
                " key-list entries do not fit int32 offsets (shorter documents or fewer heads per call)");
    auto tau = at::empty({B, H, T}, at::kFloat);
    auto offsets = at::empty({BH * NB + 1}, at::kInt);
    auto keys = at::empty({total}, at::kInt);
    float* taup = tau.data_ptr<float>();
    int32_t* op = offsets.data_ptr<int32_t>();
    int32_t* kp = keys.data_ptr<int32_t>();
    SparseKPlan plan;
    int64_t base = 0;  // where this (b, h)'s lists start in keys
    for (int64_t s = 0; s < BH; ++s) {
        const SparseKSelection& sel = sels[static_cast<size_t>(s)];
        std::transform(sel.tau.begin(), sel.tau.end(), taup + s * T, [](double t) { return static_cast<float>(t); });
        std::copy(sel.blockKeys.begin(), sel.blockKeys.end(), kp + base);
        for (int64_t blk = 0; blk < NB; ++blk) op[s * NB + blk] = static_cast<int32_t>(base + sel.blockOffsets[static_cast<size_t>(blk)]);
        base += static_cast<int64_t>(sel.blockKeys.size());
        plan.selectedPairs += sel.selectedPairs;
    }
    op[BH * NB] = static_cast<int32_t>(total);
    plan.tau = tau.to(device);
    plan.blockOffsets = offsets.to(device);
    plan.blockKeys = keys.to(device);
    plan.windowPairs = BH * sparsek_window_pairs(T, window);
    return plan;
}

}  // namespace spanscope
