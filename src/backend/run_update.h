// One run's entry in an optimizer update (Backend::update's run table). Plain data, C++17, so
// the CUDA kernels read the same layout (RunUpdate, fp32) from device memory.
#pragma once
#include <cstdint>

namespace skillrun {

// Which run, and its scalars in the element type of the update. For Adam `momentum` is beta1.
// Muon's step w = step_beta w + step_alpha d has its factors formed by the caller (in double,
// then rounded, as a run alone forms them).
template <class T>
struct RunUpdateOf {
  uint32_t run = 0;    // the run's slot: its tensor (w, g) is at run * param_stride
  uint32_t slice = 0;  // its slice of the state arenas (m, v): at slice * state_stride
  T lr = 0, momentum = 0, beta2 = 0, eps = 0, weight_decay = 0;
  T step_alpha = 0, step_beta = 1;
  // Coupled weight decay (optimizer.weight_decay_mode coupled): g += coupled_weight_decay * w
  // before the rule, done by update_tensor (optim/optimizer.h) with one axpby per entry; the
  // update kernels never read it (0: nothing is added).
  T coupled_weight_decay = 0;
};
using RunUpdate = RunUpdateOf<float>;

}  // namespace skillrun
