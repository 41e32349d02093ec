// SKR_HD marks functions compiled for both host and device, so that one definition of the RNG
// and of the data generator serves the CPU backend and the CUDA kernels alike.
#pragma once
#if defined(__CUDACC__)
#define SKR_HD __host__ __device__ __forceinline__
#else
#define SKR_HD inline
#endif
