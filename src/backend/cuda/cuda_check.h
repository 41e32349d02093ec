// Error checks for the CUDA backend's host code. SKR_CUDA_CHECK (kernels/common.cuh),
// SKR_CUBLAS_CHECK and SKR_CUSOLVER_CHECK throw skillrun::RuntimeError naming the expression,
// file, line and the library's error string; the _NOTHROW variants log instead, for
// destructors and deallocate(). Only files under src/backend/cuda/ include this header.
#pragma once
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cusolverDn.h>

#include "common.cuh"  // kernels/: SKR_CUDA_CHECK, throw_cuda_error

namespace skillrun::cuda {

const char* cusolver_status_name(cusolverStatus_t status) noexcept;
[[noreturn]] void throw_cublas_error(cublasStatus_t status, const char* expr, const char* file, int line);
[[noreturn]] void throw_cusolver_error(cusolverStatus_t status, const char* expr, const char* file, int line);
// Logs "<library> error <name> in <expr> at <file>:<line>" at error level; never throws.
void log_error_nothrow(const char* library, const char* name, const char* expr, const char* file, int line) noexcept;

}  // namespace skillrun::cuda

#define SKR_CUBLAS_CHECK(expr)                                                                                  \
  do {                                                                                                          \
    const cublasStatus_t skr_status_ = (expr);                                                                  \
    if (skr_status_ != CUBLAS_STATUS_SUCCESS)                                                                   \
      ::skillrun::cuda::throw_cublas_error(skr_status_, #expr, __FILE__, __LINE__);                             \
  } while (0)

#define SKR_CUSOLVER_CHECK(expr)                                                                                \
  do {                                                                                                          \
    const cusolverStatus_t skr_status_ = (expr);                                                                \
    if (skr_status_ != CUSOLVER_STATUS_SUCCESS)                                                                 \
      ::skillrun::cuda::throw_cusolver_error(skr_status_, #expr, __FILE__, __LINE__);                           \
  } while (0)

#define SKR_CUDA_CHECK_NOTHROW(expr)                                                                            \
  do {                                                                                                          \
    const cudaError_t skr_err_ = (expr);                                                                        \
    if (skr_err_ != cudaSuccess)                                                                                \
      ::skillrun::cuda::log_error_nothrow("CUDA", cudaGetErrorString(skr_err_), #expr, __FILE__, __LINE__);     \
  } while (0)

#define SKR_CUBLAS_CHECK_NOTHROW(expr)                                                                          \
  do {                                                                                                          \
    const cublasStatus_t skr_status_ = (expr);                                                                  \
    if (skr_status_ != CUBLAS_STATUS_SUCCESS)                                                                   \
      ::skillrun::cuda::log_error_nothrow("cuBLAS", cublasGetStatusString(skr_status_), #expr, __FILE__,        \
                                          __LINE__);                                                            \
  } while (0)

#define SKR_CUSOLVER_CHECK_NOTHROW(expr)                                                                        \
  do {                                                                                                          \
    const cusolverStatus_t skr_status_ = (expr);                                                                \
    if (skr_status_ != CUSOLVER_STATUS_SUCCESS)                                                                 \
      ::skillrun::cuda::log_error_nothrow("cuSOLVER", ::skillrun::cuda::cusolver_status_name(skr_status_),      \
                                          #expr, __FILE__, __LINE__);                                           \
  } while (0)
