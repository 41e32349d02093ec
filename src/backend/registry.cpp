// Picks the backend for --device / config.device and checks the precision against it. The
// CUDA backend is reached through backend/cuda/cuda_factory.h (plain C++), so no CUDA header
// leaks into this file; in a build without CUDA (no SKILLRUN_HAVE_CUDA) it is never named.
#include <memory>
#include <string>

#include <spdlog/spdlog.h>

#include "backend/backend.h"
#include "backend/cpu/cpu_backend.h"
#include "core/error.h"
#ifdef SKILLRUN_HAVE_CUDA
#include "backend/cuda/cuda_factory.h"
#endif

namespace skillrun {

bool cuda_backend_available() {
#ifdef SKILLRUN_HAVE_CUDA
  return cuda_device_count() > 0;
#else
  return false;
#endif
}

std::size_t cuda_memory_bytes() {
#ifdef SKILLRUN_HAVE_CUDA
  return cuda_device_memory_bytes();
#else
  return 0;
#endif
}

namespace {

// The CPU backend computes in fp32 (or fp64) only. A tf32/bf16 run on it would be an fp32 run
// under a reduced-precision label, which the analysis could not tell apart: refuse instead.
std::unique_ptr<Backend> make_cpu(Precision precision, const std::string& why_cpu) {
  if (precision == Precision::Tf32 || precision == Precision::Bf16) {
    throw UsageError("precision \"" + std::string(name(precision)) +
                     "\" needs the CUDA backend; the CPU backend computes in fp32 only" + why_cpu +
                     " (use precision fp32 for CPU runs)");
  }
  return std::make_unique<CpuBackend>();
}

}  // namespace

std::unique_ptr<Backend> make_backend(DeviceChoice choice, Precision precision) {
  if (choice == DeviceChoice::Cpu) return make_cpu(precision, "");
  // Only the CPU backend implements the fp64 ops (Backend's double overloads throw elsewhere).
  if (precision == Precision::Fp64) {
    if (choice == DeviceChoice::Cuda) {
      throw UsageError("precision \"fp64\" runs on the CPU backend only (the CUDA backend computes in fp32, "
                       "tf32 or bf16); use --device cpu, or precision fp32 on the GPU");
    }
    spdlog::info("device auto: precision fp64 runs on the CPU backend; using it");
    return make_cpu(precision, "");
  }
#ifdef SKILLRUN_HAVE_CUDA
  if (cuda_device_count() > 0) return make_cuda_backend(0, precision);
  const std::string reason = cuda_unavailable_reason();
  if (choice == DeviceChoice::Cuda) {
    throw UsageError("device \"cuda\" requested, but no usable CUDA device was found (" + reason +
                     "); use --device cpu or auto");
  }
  spdlog::info("device auto: no usable CUDA device ({}); using the CPU backend", reason);
  return make_cpu(precision, " (device auto fell back to the CPU: " + reason + ")");
#else
  if (choice == DeviceChoice::Cuda) {
    throw UsageError("device \"cuda\" requested, but this skillrun was built without CUDA "
                     "(configure with nvcc present and -DSKILLRUN_CUDA=ON); use --device cpu or auto");
  }
  spdlog::info("device auto: this skillrun was built without CUDA; using the CPU backend");
  return make_cpu(precision, " (device auto fell back to the CPU: built without CUDA)");
#endif
}

}  // namespace skillrun
