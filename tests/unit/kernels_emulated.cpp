// Every kernel file compiled for the host, once, for the tests that run kernels on the CPU
// (test_*_emulated.cpp, through the launchers their .cuh headers declare): see
// tests/support/emulated_cuda_runtime.h. `#pragma unroll` means nothing to the host compiler
// (-Wno-unknown-pragmas: tests/CMakeLists.txt).
#define SKILLRUN_CUDA_EMULATION 1
#include "../../kernels/elementwise.cu"
#include "../../kernels/loss.cu"
#include "../../kernels/msign.cu"
#include "../../kernels/newton_schulz.cu"
#include "../../kernels/optim_update.cu"
#include "../../kernels/philox_data.cu"
#include "../../kernels/reduce.cu"
