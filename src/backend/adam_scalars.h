// The per-step scalars of Adam/AdamW, formed once on the host and shared by every backend so
// the CPU and CUDA updates agree to the bit. The bias corrections are update_math.h's
// adam_bias_correction, the same function a graph-replayed CUDA step runs on the device.
#pragma once
#include <cstdint>
#include <stdexcept>
#include <string>

#include "backend/update_math.h"

namespace skillrun {

template <class T>
struct AdamScalarsT {
  T step;          // lr / (1 - beta1^t)
  T inv_sqrt_bc2;  // 1 / sqrt(1 - beta2^t)
  T decay;         // AdamW: 1 - lr wd applied to w first; Adam: 1
  T l2;            // Adam + L2: wd folded into the gradient; AdamW: 0
};
using AdamScalars = AdamScalarsT<float>;

// t is the 1-based step. T is the element type of the update (float, or double for fp64 runs).
template <class T>
AdamScalarsT<T> adam_scalars(const char* backend, T lr, T beta1, T beta2, T weight_decay, bool decoupled, int64_t t) {
  if (t < 1) throw std::invalid_argument(std::string(backend) + " adam_update: step t must be >= 1");
  const AdamBiasCorrection<T> bc = adam_bias_correction(lr, beta1, beta2, static_cast<double>(t));
  return AdamScalarsT<T>{bc.step, bc.inv_sqrt_bc2, decoupled ? decay_factor(lr, weight_decay) : T(1),
                         decoupled ? T(0) : weight_decay};
}

}  // namespace skillrun
