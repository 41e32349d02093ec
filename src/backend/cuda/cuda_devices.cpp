// Device discovery for the registry and `skillrun devices`: which GPUs this build can run on.
// A device is usable when its compute capability is at least the oldest architecture the
// kernels were compiled for (SKILLRUN_CUDA_MIN_CC, from CMAKE_CUDA_ARCHITECTURES): PTX runs
// forward on newer GPUs, never backward. No driver or no device is not an error here.
#include <exception>
#include <memory>
#include <string>
#include <vector>

#include <cuda_runtime.h>
#include <fmt/format.h>

#include "backend/cuda/cuda_backend.h"
#include "backend/cuda_module.h"
#include "core/error.h"
#include "core/version.h"

#ifndef SKILLRUN_CUDA_MIN_CC
#define SKILLRUN_CUDA_MIN_CC 0
#endif

namespace skillrun {
namespace {

constexpr int kMinComputeCapability = SKILLRUN_CUDA_MIN_CC;  // e.g. 90 for sm_90

struct DeviceScan {
  std::vector<int> usable;  // CUDA ordinals, in order
  std::string problem;      // why none is usable, when none is
};

std::string min_cc_text() { return fmt::format("{}.{}", kMinComputeCapability / 10, kMinComputeCapability % 10); }

DeviceScan scan_devices() noexcept {
  DeviceScan scan;
  try {
    int count = 0;
    const cudaError_t err = cudaGetDeviceCount(&count);
    if (err != cudaSuccess) {
      (void)cudaGetLastError();
      scan.problem = err == cudaErrorNoDevice ? std::string("no CUDA device visible")
                     : err == cudaErrorInsufficientDriver
                         ? std::string("the CUDA driver is missing or older than the runtime this build uses")
                         : fmt::format("CUDA is not usable ({})", cudaGetErrorString(err));
      return scan;
    }
    if (count == 0) {
      scan.problem = "no CUDA device visible";
      return scan;
    }
    for (int d = 0; d < count; ++d) {
      int major = 0, minor = 0;
      if (cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, d) != cudaSuccess ||
          cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, d) != cudaSuccess) {
        (void)cudaGetLastError();
        continue;
      }
      if (major * 10 + minor >= kMinComputeCapability) {
        scan.usable.push_back(d);
      } else if (scan.problem.empty()) {
        scan.problem = fmt::format("cuda:{} has compute capability {}.{}, this build needs >= {}", d, major, minor,
                                   min_cc_text());
      }
    }
    if (!scan.usable.empty()) scan.problem.clear();
  } catch (...) {  // only allocation can throw here
    scan.usable.clear();
    scan.problem = "device query failed";
  }
  return scan;
}

}  // namespace

// The module's side of backend/cuda_module.h.
namespace module {

int device_count() noexcept { return static_cast<int>(scan_devices().usable.size()); }

std::string unavailable_reason() { return scan_devices().problem; }

std::size_t device_memory_bytes() noexcept {
  const DeviceScan scan = scan_devices();
  if (scan.usable.empty()) return 0;
  cudaDeviceProp prop{};
  if (cudaGetDeviceProperties(&prop, scan.usable.front()) != cudaSuccess) {
    (void)cudaGetLastError();
    return 0;
  }
  return prop.totalGlobalMem;
}

std::unique_ptr<Backend> make_backend(int device, Precision precision) {
  const DeviceScan scan = scan_devices();
  if (device < 0 || device >= static_cast<int>(scan.usable.size())) {
    throw RuntimeError(scan.usable.empty()
                           ? "no usable CUDA device: " + scan.problem
                           : fmt::format("CUDA device {} requested, {} usable", device, scan.usable.size()));
  }
  return std::make_unique<CudaBackend>(scan.usable[static_cast<std::size_t>(device)], precision);
}

std::vector<std::string> describe_devices() {
  std::vector<std::string> lines;
  int count = 0;
  const cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess || count == 0) {
    (void)cudaGetLastError();
    lines.push_back("cuda: none (" + scan_devices().problem + ")");
    return lines;
  }
  for (int d = 0; d < count; ++d) {
    cudaDeviceProp prop{};
    if (cudaGetDeviceProperties(&prop, d) != cudaSuccess) {
      (void)cudaGetLastError();
      lines.push_back(fmt::format("cuda:{}  (properties unavailable)", d));
      continue;
    }
    const bool usable = prop.major * 10 + prop.minor >= kMinComputeCapability;
    lines.push_back(fmt::format("cuda:{}  {}  {:.1f} GiB  compute capability {}.{}  {}", d, prop.name,
                                static_cast<double>(prop.totalGlobalMem) / (1024.0 * 1024.0 * 1024.0), prop.major,
                                prop.minor,
                                usable ? std::string("usable")
                                       : "not usable: this build needs compute capability >= " + min_cc_text()));
  }
  return lines;
}

}  // namespace module

}  // namespace skillrun

extern "C" __attribute__((visibility("default"))) const skillrun::CudaModuleApi* skillrun_cuda_module() {
  static const skillrun::CudaModuleApi api{skillrun::kCudaModuleVersion,      skillrun::git_commit(),
                                           skillrun::module::device_count,
                                           skillrun::module::unavailable_reason, skillrun::module::device_memory_bytes,
                                           skillrun::module::make_backend,       skillrun::module::describe_devices};
  return &api;
}
