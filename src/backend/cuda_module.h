// The CUDA backend lives in a module, libskillrun_cuda.so, opened at run time the first time a
// GPU is asked for or probed (backend/cuda_loader.cpp), so that the commands and runs that never
// touch a GPU do not load cuBLAS and cuSOLVER (about a second of start-up on a loaded machine).
// This is the table the module hands over: plain C++, no CUDA header.
#pragma once
#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "backend/backend.h"

namespace skillrun {

// Bumped whenever the table changes: a module of another version is refused. A module built
// from another commit than the executable is refused too (`commit`: its git_commit()), since
// it implements this build's Backend.
inline constexpr int kCudaModuleVersion = 2;

struct CudaModuleApi {
  int version = kCudaModuleVersion;
  const char* commit;
  int (*device_count)() noexcept;
  std::string (*unavailable_reason)();
  std::size_t (*device_memory_bytes)() noexcept;
  std::unique_ptr<Backend> (*make_backend)(int device, Precision precision);
  std::vector<std::string> (*describe_devices)();
};

// The module's one exported symbol.
inline constexpr const char* kCudaModuleEntry = "skillrun_cuda_module";
using CudaModuleEntry = const CudaModuleApi* (*)();

}  // namespace skillrun
