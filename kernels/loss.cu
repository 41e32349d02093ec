// Softmax cross-entropy, one thread per row (the models here have 2 classes; a row is a few
// registers). With m = max_j l_j and s = sum_j exp(l_j - m):
//   loss = log s - (l_y - m)                      (nats; no cancellation of large numbers)
//   dlogits_j = grad_scale (exp(l_j - m) / s - [j == y])
//   correct = 1 iff l_y > l_j for every j != y    (ties and NaN count as wrong)
// The same operations in the same order as the CPU backend, in fp32.
#include <math_constants.h>

#include <cmath>

#include "common.cuh"
#include "loss.cuh"

namespace skillrun::cuda {

// kernels

__global__ void cross_entropy_kernel(const float* logits, const int32_t* labels, int rows, int classes, float* loss,
                                     float* correct, float* dlogits, float grad_scale, int* bad_label) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= rows) return;
  const int32_t label = labels[i];
  // Row pointers are formed only once classes > 0 is known (a bad label covers classes <= 0).
  if (label < 0 || label >= classes) {
    // A plain store: every writer stores the same 1, and the flag lives in mapped host memory.
    if (bad_label != nullptr) *static_cast<volatile int*>(bad_label) = 1;
    loss[i] = CUDART_NAN_F;
    correct[i] = 0.0f;
    if (dlogits != nullptr && classes > 0) {
      float* d = dlogits + static_cast<std::size_t>(i) * classes;
      for (int j = 0; j < classes; ++j) d[j] = CUDART_NAN_F;
    }
    return;
  }
  const float* l = logits + static_cast<std::size_t>(i) * classes;
  float* d = dlogits != nullptr ? dlogits + static_cast<std::size_t>(i) * classes : nullptr;
  float max_logit = l[0];
  // std::max's rule (a < b ? b : a), not fmaxf: a NaN logit must propagate as on the CPU.
  for (int j = 1; j < classes; ++j) max_logit = max_logit < l[j] ? l[j] : max_logit;
  float sum = 0.0f;
  for (int j = 0; j < classes; ++j) sum += expf(l[j] - max_logit);
  loss[i] = logf(sum) - (l[label] - max_logit);
  bool strictly_best = true;
  for (int j = 0; j < classes; ++j)
    if (j != label && !(l[label] > l[j])) strictly_best = false;
  correct[i] = strictly_best ? 1.0f : 0.0f;
  if (d != nullptr) {
    const float scale = grad_scale / sum;
    for (int j = 0; j < classes; ++j) d[j] = scale * expf(l[j] - max_logit);
    d[label] -= grad_scale;
  }
}

// launchers

void launch_cross_entropy(const float* logits, const int32_t* labels, int rows, int classes, float* loss,
                          float* correct, float* dlogits, float grad_scale, int* bad_label, cudaStream_t stream) {
  // classes <= 0 still launches: every label is then outside [0, classes) and gets flagged, as
  // the CPU backend throws for it.
  if (rows <= 0) return;
  const unsigned int blocks = static_cast<unsigned int>((rows + kThreads - 1) / kThreads);
  cross_entropy_kernel<<<blocks, kThreads, 0, stream>>>(logits, labels, rows, classes, loss, correct, dlogits,
                                                        grad_scale, bad_label);
  SKR_CUDA_CHECK_LAUNCH("cross_entropy_kernel");
}

}  // namespace skillrun::cuda
