// The per-element maths of every optimizer update, written once for the CPU backend's OpenMP
// loops (float and double) and the CUDA kernels in kernels/optim_update.cu (float), so the two
// backends run the same operations in the same order and agree to the bit. Header-only; no CUDA
// headers: SKR_HD makes each function __host__ __device__ under nvcc and plain inline elsewhere.
//
// The rules, per element (wd: weight decay, decay = 1 - lr wd):
//   SGD:      w -= lr (g + wd w)                                      (momentum 0: no state)
//             heavy ball: m = mu m + g + wd w;  w -= lr m
//             Nesterov:   g' = g + wd w;  m = mu m + g';  w -= lr (g' + mu m)
//   NMD:      m = beta m + g;  w = w decay - (lr / ||m||_F) m          (no step if ||m||_F = 0)
//   Adam(W):  g' = g + l2 w;  m = b1 m + (1 - b1) g';  v = b2 v + (1 - b2) g'^2;
//             w = w decay - step m / (sqrt(v) / sqrt(bc2) + eps),
//             step = lr / bc1, bc1 = 1 - b1^t, bc2 = 1 - b2^t; AdamW: l2 = 0, Adam + L2: decay = 1
//   SignGD:   m = mu m + g;  w = w decay - lr sign(m)                 (mu = 0: sign(g))
//   Momentum (Muon's first stage): m = beta m + g;  out = nesterov ? g + beta m : m
//
// Bit-exactness: every expression below is the exact sequence of rounded operations both
// backends have always run; do not reassociate or fuse. The host builds without FMA and the
// kernels with --fmad=false, so a * b + c is two roundings on both sides. A float square root
// stays a float one (sqrtf on the device, std::sqrt(float) on the host), never a double root
// rounded to float. Adam's bias corrections are formed in double from the 1-based step t: in
// float, 1 - 0.999^t loses most of its digits for small t.
#pragma once
#include <cmath>

#include "core/hostdevice.h"

namespace skillrun {

// Square root and power from the device or the host library. Under nvcc, CUDA's overloads make
// sqrt(float) the float root (sqrtf), as std::sqrt(float) is on the host.
template <class T>
SKR_HD T sqrt_of(T x) {
#if defined(__CUDA_ARCH__)
  return sqrt(x);
#else
  return std::sqrt(x);
#endif
}
SKR_HD double pow_of(double x, double y) {
#if defined(__CUDA_ARCH__)
  return pow(x, y);
#else
  return std::pow(x, y);
#endif
}

// -1, 0 or +1 (0 for +-0; NaN gives 0): SignGD steps nowhere along a zero coordinate.
template <class T>
SKR_HD T sign_of(T v) {
  return static_cast<T>((v > T(0)) - (v < T(0)));
}

// The decoupled weight-decay factor 1 - lr wd that NMD, SignGD and AdamW apply to w first.
template <class T>
SKR_HD T decay_factor(T lr, T weight_decay) {
  return T(1) - lr * weight_decay;
}

// m = beta m + g, the momentum buffer of NMD, SignGD, Muon and Nesterov SGD; returns the new m.
template <class T>
SKR_HD T accumulate_momentum(T& m, T g, T beta) {
  const T mi = beta * m + g;
  m = mi;
  return mi;
}

// ---- SGD ----

// Plain SGD (momentum 0): no state.
template <class T>
SKR_HD T sgd_element(T w, T g, T lr, T wd) {
  return w - lr * (g + wd * w);
}

// Heavy-ball SGD. The decay term is added after the momentum term (mu m + g + wd w, left to
// right), not folded into g first as in the Nesterov form: that is the order both backends run.
template <class T>
SKR_HD void sgd_heavy_ball_element(T& w, T g, T& m, T lr, T mu, T wd) {
  const T mi = mu * m + g + wd * w;
  m = mi;
  w = w - lr * mi;
}

template <class T>
SKR_HD void sgd_nesterov_element(T& w, T g, T& m, T lr, T mu, T wd) {
  const T gi = g + wd * w;
  const T mi = accumulate_momentum(m, gi, mu);
  w = w - lr * (gi + mu * mi);
}

// ---- NMD: a momentum pass that also measures ||m||_F^2 (in double), then the step ----

template <class T>
SKR_HD T nmd_momentum_element(T& m, T g, T beta) {
  return accumulate_momentum(m, g, beta);
}

// lr / ||m||_F, formed in double; only called with norm_sq > 0.
template <class T>
SKR_HD T nmd_step_size(T lr, double norm_sq) {
  return static_cast<T>(static_cast<double>(lr) / sqrt_of(norm_sq));
}

template <class T>
SKR_HD T nmd_step_element(T w, T m, T step, T decay) {
  return w * decay - step * m;
}

// ---- Adam(W) ----

// The step's bias-corrected scalars: step = lr / bc1 and 1 / sqrt(bc2), in double, rounded once
// to T. t is the 1-based step (a double here because the device forms it from its counter).
template <class T>
struct AdamBiasCorrection {
  T step;
  T inv_sqrt_bc2;
};

template <class T>
SKR_HD AdamBiasCorrection<T> adam_bias_correction(T lr, T beta1, T beta2, double t) {
  const double bc1 = 1.0 - pow_of(static_cast<double>(beta1), t);
  const double bc2 = 1.0 - pow_of(static_cast<double>(beta2), t);
  return AdamBiasCorrection<T>{static_cast<T>(static_cast<double>(lr) / bc1), static_cast<T>(1.0 / sqrt_of(bc2))};
}

// One element of Adam: l2 = wd and decay = 1 for Adam + L2, l2 = 0 and decay = 1 - lr wd for
// AdamW. 1 - b1 and 1 - b2 are loop-invariant (the compilers hoist them); the same float either way.
template <class T>
SKR_HD void adam_element(T& w, T g, T& m, T& v, T step, T inv_sqrt_bc2, T beta1, T beta2, T eps, T decay, T l2) {
  const T gi = g + l2 * w;
  const T mi = beta1 * m + (T(1) - beta1) * gi;
  const T vi = beta2 * v + (T(1) - beta2) * gi * gi;
  m = mi;
  v = vi;
  w = w * decay - step * mi / (sqrt_of(vi) * inv_sqrt_bc2 + eps);
}

// ---- SignGD: d is g (momentum 0) or the momentum m = mu m + g ----

template <class T>
SKR_HD T signgd_element(T w, T d, T lr, T decay) {
  return w * decay - lr * sign_of(d);
}

// ---- Momentum (Muon's first stage): returns out; m is read before any write to out ----

template <class T>
SKR_HD T momentum_element(T& m, T g, T beta, bool nesterov) {
  const T mi = accumulate_momentum(m, g, beta);
  return nesterov ? g + beta * mi : mi;
}

}  // namespace skillrun
