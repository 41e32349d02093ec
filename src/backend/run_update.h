// One run's entry in an optimizer update of a pack (the per-run scalar table of Backend's
// *_runs ops). Plain data, C++17, so the CUDA kernels read the same layout from device memory.
#pragma once
#include <cstdint>

namespace skillrun {

// Which run, and its scalars as the one-run ops take them. For Adam `momentum` is beta1.
// Muon's step w = step_beta w + step_alpha d has its factors formed by the caller (in double,
// then rounded, as a run alone forms them).
struct RunUpdate {
  uint32_t run = 0;    // the run's slot: its tensor (w, g) is at run * param_stride
  uint32_t slice = 0;  // its slice of the state arenas (m, v): at slice * state_stride
  float lr = 0, momentum = 0, beta2 = 0, eps = 0, weight_decay = 0;
  float step_alpha = 0, step_beta = 1;
};

}  // namespace skillrun
