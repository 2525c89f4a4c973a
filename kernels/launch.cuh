// Launching a kernel that takes one parameter struct and dynamic shared memory: raise the kernel's
// shared-memory limit to `smem`, launch on `stream`, and turn either failure into one
// std::runtime_error naming `what` (for example "span attention forward").
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <stdexcept>
#include <string>

namespace spanscope::cuda {

template <typename Params>
void launchKernel(void (*kernel)(Params), dim3 grid, int threads, size_t smem, cudaStream_t stream, const Params& p,
                  const char* what) {
    cudaError_t e = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem));
    if (e != cudaSuccess) throw std::runtime_error(std::string(what) + ": " + cudaGetErrorString(e));
    kernel<<<grid, threads, smem, stream>>>(p);
    e = cudaGetLastError();
    if (e != cudaSuccess) throw std::runtime_error(std::string(what) + " launch failed: " + cudaGetErrorString(e));
}

}  // namespace spanscope::cuda
