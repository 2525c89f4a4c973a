// Helpers shared by the attention tests: dense masks from SpanMask, readable case names, errors.
#pragma once

#include <cstdlib>
#include <exception>
#include <initializer_list>
#include <optional>
#include <string>

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <ostream>
#include <sstream>
#include <string>

#include "kernels/span_mask.h"

namespace spanscope::test {

// (T, T) boolean CPU tensor of SpanMask::allows.
inline at::Tensor denseMask(const SpanMask& mask, int64_t T) {
    auto allowed = at::empty({T, T}, at::kBool);
    auto a = allowed.accessor<bool, 2>();
    for (int64_t i = 0; i < T; ++i)
        for (int64_t j = 0; j < T; ++j) a[i][j] = mask.allows(i, j);
    return allowed;
}

// "full", "window37", "block100prev", ...
inline std::string maskName(const SpanMask& m) {
    if (m.kind == MaskKind::Full) return "full";
    return std::string(m.kind == MaskKind::Window ? "window" : "block") + std::to_string(m.span) + (m.prevBlock ? "prev" : "");
}

// "<mask>_B2_H3_T100_D64_bf16"
inline std::string shapeCaseName(const SpanMask& m, int64_t B, int64_t H, int64_t T, int64_t D, at::ScalarType dtype) {
    std::ostringstream s;
    s << maskName(m) << "_B" << B << "_H" << H << "_T" << T << "_D" << D << "_" << (dtype == at::kBFloat16 ? "bf16" : "fp16");
    return s.str();
}

// One shape of the CUDA kernel tests: batch, heads, tokens, head dim, element type, mask.
struct AttentionCase {
    int64_t B, H, T, D;
    at::ScalarType dtype;
    SpanMask mask;
};

inline std::string caseName(const AttentionCase& c) { return shapeCaseName(c.mask, c.B, c.H, c.T, c.D, c.dtype); }
inline void PrintTo(const AttentionCase& c, std::ostream* os) { *os << caseName(c); }

// Largest absolute difference, compared in fp64 on the CPU.
inline double maxAbs(const at::Tensor& a, const at::Tensor& b) {
    return (a.to(at::kDouble).cpu() - b.to(at::kDouble).cpu()).abs().max().item<double>();
}

// f() must throw a c10::Error (TORCH_CHECK) whose message mentions `needle`.
template <typename F>
void expectTorchError(F&& f, const std::string& needle) {
    try {
        f();
        ADD_FAILURE() << "expected an error mentioning '" << needle << "'";
    } catch (const c10::Error& e) {
        EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
}

// Sets an environment variable for one scope, restoring what was there before.
class ScopedEnv {
public:
    ScopedEnv(const char* name, const char* value) : name_(name) {
        if (const char* old = std::getenv(name)) old_ = old;
        ::setenv(name, value, 1);
    }
    ~ScopedEnv() { old_ ? (void)::setenv(name_.c_str(), old_->c_str(), 1) : (void)::unsetenv(name_.c_str()); }
    ScopedEnv(const ScopedEnv&) = delete;
    ScopedEnv& operator=(const ScopedEnv&) = delete;

private:
    std::string name_;
    std::optional<std::string> old_;
};

// With envName set to each of `values`, run() must throw an error that names the variable.
template <typename F>
void expectEnvValuesRejected(const char* envName, std::initializer_list<const char*> values, F&& run) {
    for (const char* value : values) {
        ScopedEnv env(envName, value);
        try {
            run();
            ADD_FAILURE() << envName << "=" << value << " was accepted";
        } catch (const std::exception& e) {
            EXPECT_NE(std::string(e.what()).find(envName), std::string::npos) << e.what();
        }
    }
}

}  // namespace spanscope::test
