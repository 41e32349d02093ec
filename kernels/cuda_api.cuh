// The CUDA runtime API for the kernel files: the real one, or, in tests that run kernels on the
// CPU (SKILLRUN_CUDA_EMULATION), the emulation of tests/support/emulated_cuda_runtime.h.
#pragma once
#if defined(SKILLRUN_CUDA_EMULATION)
#include "support/emulated_cuda_runtime.h"
#else
#include <cuda_runtime.h>
#endif
