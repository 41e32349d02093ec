// The per-step scalars of Adam/AdamW, formed once on the host and shared by every backend so
// the CPU and CUDA updates agree to the bit.
#pragma once
#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <string>

namespace skillrun {

struct AdamScalars {
  float step;          // lr / (1 - beta1^t)
  float inv_sqrt_bc2;  // 1 / sqrt(1 - beta2^t)
  float decay;         // AdamW: 1 - lr wd applied to w first; Adam: 1
  float l2;            // Adam + L2: wd folded into the gradient; AdamW: 0
};

// t is the 1-based step. Bias corrections in double: 1 - 0.999^t loses most of its digits in
// float for small t.
inline AdamScalars adam_scalars(const char* backend, float lr, float beta1, float beta2, float weight_decay,
                                bool decoupled, int64_t t) {
  if (t < 1) throw std::invalid_argument(std::string(backend) + " adam_update: step t must be >= 1");
  const double bc1 = 1.0 - std::pow(static_cast<double>(beta1), static_cast<double>(t));
  const double bc2 = 1.0 - std::pow(static_cast<double>(beta2), static_cast<double>(t));
  return AdamScalars{static_cast<float>(lr / bc1), static_cast<float>(1.0 / std::sqrt(bc2)),
                     decoupled ? 1.0f - lr * weight_decay : 1.0f, decoupled ? 0.0f : weight_decay};
}

}  // namespace skillrun
