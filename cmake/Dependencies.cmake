# Third-party dependencies, all from Debian -dev packages (no downloads).
find_package(CLI11 REQUIRED)
find_package(nlohmann_json 3.10 REQUIRED)
find_package(fmt REQUIRED)
find_package(spdlog REQUIRED)
find_package(Threads REQUIRED)
find_package(OpenMP REQUIRED COMPONENTS CXX)

# OpenBLAS ships a CMake config on Debian; LAPACKE does not, so it is found by hand.
find_package(OpenBLAS REQUIRED)
find_path(LAPACKE_INCLUDE_DIR lapacke.h REQUIRED)
find_library(LAPACKE_LIBRARY lapacke REQUIRED)
find_library(LAPACK_LIBRARY lapack REQUIRED)
add_library(skillrun_blas INTERFACE)
target_include_directories(skillrun_blas SYSTEM INTERFACE ${OpenBLAS_INCLUDE_DIRS} ${LAPACKE_INCLUDE_DIR})
target_link_libraries(skillrun_blas INTERFACE ${LAPACKE_LIBRARY} ${LAPACK_LIBRARY} ${OpenBLAS_LIBRARIES})
message(STATUS "skillrun: OpenBLAS ${OpenBLAS_VERSION} (${OpenBLAS_LIBRARIES}), LAPACKE ${LAPACKE_LIBRARY}")
