// Launchers for the softmax cross-entropy kernel (per-sample loss, correctness and gradient)
// and for the per-subtask sums of those per-sample values.
#pragma once
#include "cuda_api.cuh"

#include <cstddef>
#include <cstdint>

namespace skillrun::cuda {

// What a kernel writes into the backend's error flag (mapped host memory; 0 = no error).
constexpr int kErrorBadLabel = 1;   // cross_entropy: a label outside [0, classes)
constexpr int kErrorBadTaskId = 2;  // task_sums: a task id outside [0, n_tasks)

// logits (rows x classes), labels (rows); loss, correct (rows); dlogits (rows x classes) or
// nullptr. A label outside [0, classes) sets *bad_label (device-visible memory, may be
// nullptr) to kErrorBadLabel and gives that row NaN loss and gradient, 0 correct.
void launch_cross_entropy(const float* logits, const int32_t* labels, int rows, int classes, float* loss,
                          float* correct, float* dlogits, float grad_scale, int* bad_label, cudaStream_t stream);
// The same for each run r < runs of a pack (runs <= 65535), one launch: logits + r stride_logits,
// loss and correct + r stride_rows, dlogits + r stride_dlogits; the labels are shared.
void launch_cross_entropy(const float* logits, std::size_t stride_logits, const int32_t* labels, int rows, int classes,
                          float* loss, float* correct, std::size_t stride_rows, float* dlogits,
                          std::size_t stride_dlogits, float grad_scale, int runs, int* bad_label, cudaStream_t stream);

// Doubles of device workspace launch_task_sums needs for (rows, n_tasks).
std::size_t task_sums_workspace(int rows, int n_tasks);
// sums[k] += sum of loss[i], sums[n_tasks + k] += sum of correct[i] over the rows i with
// tasks[i] == k, in double, deterministic (fixed row groups per (rows, n_tasks), fixed order).
// A task id outside [0, n_tasks) sets *bad_task (device-visible, may be nullptr) to
// kErrorBadTaskId and the row is skipped. workspace: task_sums_workspace(rows, n_tasks) doubles.
void launch_task_sums(const float* loss, const float* correct, const int32_t* tasks, int rows, int n_tasks,
                      double* sums, double* workspace, int* bad_task, cudaStream_t stream);

}  // namespace skillrun::cuda
