// Shared by all kernel files: the throwing CUDA error check used by every launcher.
#pragma once
#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

namespace skillrun::cuda {

[[noreturn]] inline void throw_cuda_error(cudaError_t err, const char* expr, const char* file, int line) {
  throw std::runtime_error(std::string("CUDA error ") + cudaGetErrorName(err) + " (" + cudaGetErrorString(err) +
                           ") in " + expr + " at " + file + ":" + std::to_string(line));
}

}  // namespace skillrun::cuda

#define SKR_CUDA_CHECK(expr)                                                      \
  do {                                                                            \
    const cudaError_t skr_err_ = (expr);                                          \
    if (skr_err_ != cudaSuccess) ::skillrun::cuda::throw_cuda_error(skr_err_, #expr, __FILE__, __LINE__); \
  } while (0)
