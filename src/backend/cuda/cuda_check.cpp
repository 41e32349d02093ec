// Error reporting for the CUDA backend's host code: cuBLAS and cuSOLVER statuses as named,
// thrown RuntimeErrors, and the logging path of the _NOTHROW checks.
#include "backend/cuda/cuda_check.h"

#include <exception>
#include <string>

#include <spdlog/spdlog.h>

#include "core/error.h"

namespace skillrun::cuda {

const char* cusolver_status_name(cusolverStatus_t status) noexcept {
  // cuSOLVER has no status-to-string function of its own.
  switch (status) {
    case CUSOLVER_STATUS_SUCCESS: return "CUSOLVER_STATUS_SUCCESS";
    case CUSOLVER_STATUS_NOT_INITIALIZED: return "CUSOLVER_STATUS_NOT_INITIALIZED";
    case CUSOLVER_STATUS_ALLOC_FAILED: return "CUSOLVER_STATUS_ALLOC_FAILED (out of device memory)";
    case CUSOLVER_STATUS_INVALID_VALUE: return "CUSOLVER_STATUS_INVALID_VALUE";
    case CUSOLVER_STATUS_ARCH_MISMATCH: return "CUSOLVER_STATUS_ARCH_MISMATCH";
    case CUSOLVER_STATUS_MAPPING_ERROR: return "CUSOLVER_STATUS_MAPPING_ERROR";
    case CUSOLVER_STATUS_EXECUTION_FAILED: return "CUSOLVER_STATUS_EXECUTION_FAILED";
    case CUSOLVER_STATUS_INTERNAL_ERROR: return "CUSOLVER_STATUS_INTERNAL_ERROR";
    case CUSOLVER_STATUS_MATRIX_TYPE_NOT_SUPPORTED: return "CUSOLVER_STATUS_MATRIX_TYPE_NOT_SUPPORTED";
    case CUSOLVER_STATUS_NOT_SUPPORTED: return "CUSOLVER_STATUS_NOT_SUPPORTED";
    case CUSOLVER_STATUS_INVALID_WORKSPACE: return "CUSOLVER_STATUS_INVALID_WORKSPACE";
    default: return "CUSOLVER_STATUS_<unknown>";
  }
}

void throw_cublas_error(cublasStatus_t status, const char* expr, const char* file, int line) {
  const std::string message = std::string("cuBLAS error ") + cublasGetStatusName(status) + " (" +
                              cublasGetStatusString(status) + ") in " + expr + " at " + file + ":" +
                              std::to_string(line);
  if (status == CUBLAS_STATUS_ALLOC_FAILED) throw RuntimeError("out of device memory: " + message);
  throw RuntimeError(message);
}

void throw_cusolver_error(cusolverStatus_t status, const char* expr, const char* file, int line) {
  const std::string message = std::string("cuSOLVER error ") + cusolver_status_name(status) + " in " + expr + " at " +
                              file + ":" + std::to_string(line);
  if (status == CUSOLVER_STATUS_ALLOC_FAILED) throw RuntimeError("out of device memory: " + message);
  throw RuntimeError(message);
}

void log_error_nothrow(const char* library, const char* name, const char* expr, const char* file, int line) noexcept {
  try {
    spdlog::error("{} error {} in {} at {}:{}", library, name, expr, file, line);
  } catch (...) {  // logging must never take a destructor down
  }
}

}  // namespace skillrun::cuda
