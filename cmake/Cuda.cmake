# Optional CUDA: enabled when SKILLRUN_CUDA is ON and check_language finds nvcc.
# .cu files compile as C++17 (nvcc 13 with fmt 9 fails at C++20) and never include spdlog/fmt.
set(SKILLRUN_CUDA_ENABLED OFF)
if(SKILLRUN_CUDA)
  if(NOT DEFINED CMAKE_CUDA_COMPILER AND EXISTS /usr/local/cuda/bin/nvcc)
    set(CMAKE_CUDA_COMPILER /usr/local/cuda/bin/nvcc)
  endif()
  include(CheckLanguage)
  check_language(CUDA)
  if(CMAKE_CUDA_COMPILER)
    # sm_90 SASS (H100/H200) plus compute_90 PTX, which the driver JIT-compiles for newer GPUs.
    # `native` cannot work on a build machine without a GPU. Override with
    # -DCMAKE_CUDA_ARCHITECTURES=...; each extra architecture adds compile time to CI.
    if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES)
      set(CMAKE_CUDA_ARCHITECTURES "90-real;90-virtual")
    endif()
    enable_language(CUDA)
    set(CMAKE_CUDA_STANDARD 17)
    set(CMAKE_CUDA_STANDARD_REQUIRED ON)
    find_package(CUDAToolkit REQUIRED)
    set(SKILLRUN_CUDA_ENABLED ON)
    # The oldest compute capability the kernels run on (PTX runs forward, never backward): the
    # runtime counts only devices at or above it as usable. 90-real;90-virtual -> 90.
    set(SKILLRUN_CUDA_MIN_CC 9999)
    foreach(arch IN LISTS CMAKE_CUDA_ARCHITECTURES)
      string(REGEX MATCH "^[0-9]+" arch_number "${arch}")
      if(arch_number AND arch_number LESS SKILLRUN_CUDA_MIN_CC)
        set(SKILLRUN_CUDA_MIN_CC ${arch_number})
      endif()
    endforeach()
    if(SKILLRUN_CUDA_MIN_CC EQUAL 9999)
      set(SKILLRUN_CUDA_MIN_CC 0)  # all-major, native, ...: let the runtime decide
    endif()
    message(STATUS "skillrun: CUDA backend ON (nvcc ${CMAKE_CUDA_COMPILER_VERSION}, arch ${CMAKE_CUDA_ARCHITECTURES})")
  else()
    message(STATUS "skillrun: no CUDA compiler found; CPU backend only")
  endif()
else()
  message(STATUS "skillrun: CUDA switched off (SKILLRUN_CUDA=OFF); CPU backend only")
endif()
