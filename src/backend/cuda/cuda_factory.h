// The CUDA backend as seen from outside src/backend/cuda/: plain C++ declarations only, so the
// registry and the CLI can create and describe it without including a CUDA header. Defined
// only in builds with CUDA (SKILLRUN_HAVE_CUDA; callers guard their use with that macro), by
// backend/cuda_loader.cpp, which opens the module holding the backend (backend/cuda_module.h)
// on the first call: until then no CUDA library is loaded.
#pragma once
#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "backend/backend.h"

namespace skillrun {

// Devices this build can run on (compute capability >= the build's oldest architecture);
// 0 when there is no driver, no device or only older ones. Never throws.
int cuda_device_count() noexcept;
// Why cuda_device_count() is 0, in a few words ("no CUDA driver ...", "no CUDA device",
// "cuda:0 NVIDIA ... has compute capability 8.0, this build needs >= 9.0"); empty otherwise.
std::string cuda_unavailable_reason();
// Total memory of the first usable device in bytes; 0 when there is none.
std::size_t cuda_device_memory_bytes() noexcept;
// A CUDA backend on usable device `device` (0 .. cuda_device_count() - 1); throws
// RuntimeError when the device cannot be set up.
std::unique_ptr<Backend> make_cuda_backend(int device, Precision precision = Precision::Fp32);
// One line per visible device: "cuda:0  NVIDIA H100 80GB HBM3  79.1 GiB  compute capability 9.0
// usable", or the reason none is visible. Never throws for a missing driver.
std::vector<std::string> describe_cuda_devices();

}  // namespace skillrun
