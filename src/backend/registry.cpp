// Picks the backend for --device / config.device. The CUDA backend (issue 4) will register
// here through a factory in backend/cuda/, so no CUDA header leaks into this file.
#include <memory>

#include "backend/backend.h"
#include "backend/cpu/cpu_backend.h"
#include "core/error.h"

namespace skillrun {

bool cuda_backend_available() { return false; }

std::unique_ptr<Backend> make_backend(DeviceChoice choice) {
  if (choice == DeviceChoice::Cuda)
    throw RuntimeError("device \"cuda\" requested, but this version of skillrun has no CUDA backend yet; "
                       "use --device cpu or auto");
  return std::make_unique<CpuBackend>();
}

}  // namespace skillrun
