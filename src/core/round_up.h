// Rounding a count up to a multiple: arena offsets, run strides and scratch layouts all start
// their pieces on aligned boundaries (256 bytes of floats for the GEMM libraries).
#pragma once
#include <cstddef>

namespace skillrun {

constexpr std::size_t round_up(std::size_t n, std::size_t multiple) { return (n + multiple - 1) / multiple * multiple; }

}  // namespace skillrun
