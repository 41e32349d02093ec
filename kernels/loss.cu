// Softmax cross-entropy, one thread per row (the models here have 2 classes; a row is a few
// registers). With m = max_j l_j and s = sum_j exp(l_j - m):
//   loss = log s - (l_y - m)                      (nats; no cancellation of large numbers)
//   dlogits_j = grad_scale (exp(l_j - m) / s - [j == y])
//   correct = 1 iff l_y > l_j for every j != y    (ties and NaN count as wrong)
// The same operations in the same order as the CPU backend, in fp32.
//
// Per-subtask sums (task_sums), in double and deterministic without float atomics. The rows
// are cut into `blocks` contiguous groups, a function of (rows, n_tasks) only. Pass 1, one
// block per group: the task ids present in the group are found first (exact integer min/max),
// then one thread per present id scans the group's rows in order, tile by tile through shared
// memory, and writes the group's loss and correct sums for that id (0 for absent ids) to
// workspace[group][2 * n_tasks]. Pass 2, one thread per sum: adds the groups in order and adds
// the total into sums. An eval chunk is task-major, so a group holds one or two ids and only
// one or two threads per block scan; a random batch keeps every thread busy instead.

#include <climits>
#include <cmath>
#include <limits>

#include "common.cuh"
#include "loss.cuh"

namespace skillrun::cuda {

// For the rows a bad label makes NaN (constexpr: usable in device code with --expt-relaxed-constexpr).
constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

namespace {
constexpr int kTaskTile = kThreads;             // rows per shared-memory tile = threads per block
constexpr unsigned int kMaxTaskGroups = 1024;   // most row groups (pass-1 blocks)
constexpr std::size_t kTaskSumsBudget = std::size_t{1} << 20;  // doubles of workspace aimed at

struct TaskSumsGrid {
  int groups = 0;          // pass-1 blocks
  int rows_per_group = 0;
};

// One group per tile of rows, capped so that the workspace (groups x 2 n_tasks doubles) stays
// near kTaskSumsBudget; no empty trailing group. Depends on (rows, n_tasks) only.
TaskSumsGrid task_sums_grid(int rows, int n_tasks) {
  const std::size_t width = 2 * static_cast<std::size_t>(n_tasks > 0 ? n_tasks : 1);
  std::size_t groups = (static_cast<std::size_t>(rows) + kTaskTile - 1) / kTaskTile;
  const std::size_t by_budget = kTaskSumsBudget / width > 0 ? kTaskSumsBudget / width : 1;
  if (groups > kMaxTaskGroups) groups = kMaxTaskGroups;
  if (groups > by_budget) groups = by_budget;
  if (groups == 0) groups = 1;
  TaskSumsGrid g;
  g.rows_per_group = static_cast<int>((static_cast<std::size_t>(rows) + groups - 1) / groups);
  g.groups = (rows + g.rows_per_group - 1) / g.rows_per_group;
  return g;
}
}  // namespace

// kernels

__global__ void cross_entropy_kernel(const float* logits, std::size_t stride_logits, const int32_t* labels, int rows,
                                     int classes, float* loss, float* correct, std::size_t stride_rows, float* dlogits,
                                     std::size_t stride_dlogits, float grad_scale, int* bad_label) {
  // The run axis of a pack: run blockIdx.y's operands at its strides (labels shared).
  logits += blockIdx.y * stride_logits;
  loss += blockIdx.y * stride_rows;
  correct += blockIdx.y * stride_rows;
  if (dlogits != nullptr) dlogits += blockIdx.y * stride_dlogits;
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= rows) return;
  const int32_t label = labels[i];
  // Row pointers are formed only once classes > 0 is known (a bad label covers classes <= 0).
  if (label < 0 || label >= classes) {
    // A plain store: every writer stores the same 1, and the flag lives in mapped host memory.
    if (bad_label != nullptr) *static_cast<volatile int*>(bad_label) = kErrorBadLabel;
    loss[i] = kNaN;
    correct[i] = 0.0f;
    if (dlogits != nullptr && classes > 0) {
      float* d = dlogits + static_cast<std::size_t>(i) * classes;
      for (int j = 0; j < classes; ++j) d[j] = kNaN;
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

// Block of kTaskTile threads per group of rows [blockIdx.x * rows_per_group, ...).
__global__ void task_sums_partial_kernel(const float* loss, const float* correct, const int32_t* tasks, int rows,
                                         int n_tasks, int rows_per_group, double* workspace, int* bad_task) {
  __shared__ int32_t tile_task[kTaskTile];
  __shared__ float tile_loss[kTaskTile];
  __shared__ float tile_correct[kTaskTile];
  __shared__ int range_lo, range_hi;
  const int begin = static_cast<int>(blockIdx.x) * rows_per_group;
  const int end = rows - begin < rows_per_group ? rows : begin + rows_per_group;  // no int overflow
  const int threads = static_cast<int>(blockDim.x);
  if (threadIdx.x == 0) {
    range_lo = INT_MAX;
    range_hi = -1;
  }
  __syncthreads();
  // The ids present (exact integer min/max: the atomics' order cannot change the result).
  int lo = INT_MAX, hi = -1;
  for (int i = begin + static_cast<int>(threadIdx.x); i < end; i += threads) {
    const int32_t k = tasks[i];
    if (k < 0 || k >= n_tasks) {
      // A plain store, as in cross_entropy: every writer stores the same value.
      if (bad_task != nullptr) *static_cast<volatile int*>(bad_task) = kErrorBadTaskId;
    } else {
      lo = min(lo, static_cast<int>(k));
      hi = max(hi, static_cast<int>(k));
    }
  }
  atomicMin(&range_lo, lo);
  atomicMax(&range_hi, hi);
  __syncthreads();
  lo = range_lo;
  hi = range_hi;
  if (n_tasks <= 0) return;  // every id was bad; nothing to write
  double* out = workspace + static_cast<std::size_t>(blockIdx.x) * 2 * static_cast<std::size_t>(n_tasks);
  for (int k = static_cast<int>(threadIdx.x); k < n_tasks; k += threads) {
    if (k < lo || k > hi) {
      out[k] = 0.0;
      out[n_tasks + k] = 0.0;
    }
  }
  // lo and hi are the same in every thread, so every thread runs the same iterations and
  // reaches every __syncthreads().
  for (int k0 = lo; k0 <= hi; k0 += threads) {
    const int k = k0 + static_cast<int>(threadIdx.x);
    double l = 0.0, c = 0.0;
    for (int t = begin; t < end; t += kTaskTile) {
      const int count = min(kTaskTile, end - t);
      __syncthreads();  // the previous tile has been read by everyone
      if (static_cast<int>(threadIdx.x) < count) {
        tile_task[threadIdx.x] = tasks[t + threadIdx.x];
        tile_loss[threadIdx.x] = loss[t + threadIdx.x];
        tile_correct[threadIdx.x] = correct[t + threadIdx.x];
      }
      __syncthreads();
      if (k <= hi) {
        for (int r = 0; r < count; ++r) {
          if (tile_task[r] == k) {  // the same address in every thread: a broadcast read
            l += tile_loss[r];
            c += tile_correct[r];
          }
        }
      }
    }
    if (k <= hi) {
      out[k] = l;
      out[n_tasks + k] = c;
    }
  }
}

// One thread per sum j in [0, width): sums[j] += groups added in order.
__global__ void task_sums_finalize_kernel(const double* workspace, int groups, std::size_t width, double* sums) {
  for (std::size_t j = global_index(); j < width; j += grid_stride()) {
    double total = 0.0;
    for (int g = 0; g < groups; ++g) total += workspace[static_cast<std::size_t>(g) * width + j];
    sums[j] += total;
  }
}

// launchers

void launch_cross_entropy(const float* logits, const int32_t* labels, int rows, int classes, float* loss,
                          float* correct, float* dlogits, float grad_scale, int* bad_label, cudaStream_t stream) {
  launch_cross_entropy(logits, 0, labels, rows, classes, loss, correct, 0, dlogits, 0, grad_scale, 1, bad_label,
                       stream);
}

void launch_cross_entropy(const float* logits, std::size_t stride_logits, const int32_t* labels, int rows, int classes,
                          float* loss, float* correct, std::size_t stride_rows, float* dlogits,
                          std::size_t stride_dlogits, float grad_scale, int runs, int* bad_label, cudaStream_t stream) {
  // classes <= 0 still launches: every label is then outside [0, classes) and gets flagged, as
  // the CPU backend throws for it.
  if (rows <= 0 || runs <= 0) return;
  const dim3 grid(static_cast<unsigned int>((rows + kThreads - 1) / kThreads), static_cast<unsigned int>(runs));
  SKR_LAUNCH(grid, kThreads, 0, stream, cross_entropy_kernel)(logits, stride_logits, labels, rows, classes, loss, correct,
                                                      stride_rows, dlogits, stride_dlogits, grad_scale, bad_label);
  SKR_CUDA_CHECK_LAUNCH("cross_entropy_kernel");
}

std::size_t task_sums_workspace(int rows, int n_tasks) {
  if (rows <= 0 || n_tasks <= 0) return 0;
  return static_cast<std::size_t>(task_sums_grid(rows, n_tasks).groups) * 2 * static_cast<std::size_t>(n_tasks);
}

void launch_task_sums(const float* loss, const float* correct, const int32_t* tasks, int rows, int n_tasks,
                      double* sums, double* workspace, int* bad_task, cudaStream_t stream) {
  // n_tasks <= 0 still launches pass 1: every id is then bad and gets flagged, as the CPU throws.
  if (rows <= 0) return;
  const TaskSumsGrid grid = task_sums_grid(rows, n_tasks);
  SKR_LAUNCH(static_cast<unsigned int>(grid.groups), kTaskTile, 0, stream, task_sums_partial_kernel)(
      loss, correct, tasks, rows, n_tasks, grid.rows_per_group, workspace, bad_task);
  SKR_CUDA_CHECK_LAUNCH("task_sums_partial_kernel");
  if (n_tasks <= 0) return;
  const std::size_t width = 2 * static_cast<std::size_t>(n_tasks);
  SKR_LAUNCH(grid_for(width), kThreads, 0, stream, task_sums_finalize_kernel)(workspace, grid.groups, width, sums);
  SKR_CUDA_CHECK_LAUNCH("task_sums_finalize_kernel");
}

}  // namespace skillrun::cuda
