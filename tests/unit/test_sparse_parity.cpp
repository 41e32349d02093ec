// Multi-task sparse parity data: Zipf frequencies, labels, subsets and determinism, through
// the CPU backend's sparse_parity op (the same code path training uses).
#include <gtest/gtest.h>

#include <cmath>
#include <set>

#include "backend/cpu/cpu_backend.h"
#include "core/error.h"
#include "core/philox.h"
#include "tasks/sparse_parity.h"

namespace skillrun {
namespace {

TaskConfig small_task(int n_tasks, int n_bits, int k, double gamma) {
  TaskConfig c;
  c.n_tasks = n_tasks;
  c.n_bits = n_bits;
  c.k = k;
  c.zipf_exponent = gamma;
  return c;
}

struct Batch {
  std::vector<float> x;
  std::vector<int32_t> labels, tasks;
};

Batch draw_batch(Backend& backend, const SparseParityTask& task, int64_t step, int rows) {
  Buffer<float> x(backend, static_cast<std::size_t>(rows) * task.input_dim());
  Buffer<int32_t> y(backend, rows), t(backend, rows);
  task.train_batch(step, rows, x.data(), y.data(), t.data());
  return {x.download(), y.download(), t.download()};
}

TEST(Zipf, ProbabilitiesFollowPowerLaw) {
  // p_i = (i+1)^-1.4 / H, H = 1 + 2^-1.4 + 3^-1.4 = 1 + 0.3789291 + 0.2147980 = 1.5937271
  const auto p = zipf_probabilities(3, 1.4);
  EXPECT_NEAR(p[0], 1.0 / 1.5937271, 1e-6);
  EXPECT_NEAR(p[1], 0.3789291 / 1.5937271, 1e-6);
  EXPECT_NEAR(p[2], 0.2147980 / 1.5937271, 1e-6);
}

TEST(Zipf, ChiSquaredOverTwoMillionDrawsIsConsistent) {
  CpuBackend backend;
  const int n_tasks = 10, rows = 2'000'000;
  SparseParityTask task(backend, small_task(n_tasks, 12, 1, 1.4), 1234);
  const Batch b = draw_batch(backend, task, 0, rows);
  std::vector<double> counts(n_tasks, 0.0);
  for (int32_t t : b.tasks) counts[t] += 1;
  double chi2 = 0;
  for (int i = 0; i < n_tasks; ++i) {
    const double expected = rows * task.frequencies()[i];
    chi2 += (counts[i] - expected) * (counts[i] - expected) / expected;
  }
  // 9 degrees of freedom: P(chi2 > 27.88) = 0.001.
  EXPECT_LT(chi2, 27.88) << "task frequencies do not follow p_i";
  // The one-hot part of x marks the drawn task.
  for (int r = 0; r < 1000; ++r)
    for (int i = 0; i < n_tasks; ++i) EXPECT_EQ(b.x[r * task.input_dim() + i], i == b.tasks[r] ? 1.0f : 0.0f);
}

TEST(SparseParity, LabelIsParityOfTheSubsetBits) {
  CpuBackend backend;
  SparseParityTask task(backend, small_task(5, 40, 3, 1.0), 7);
  const Batch b = draw_batch(backend, task, 3, 4000);
  int ones = 0;
  for (int r = 0; r < 4000; ++r) {
    const float* v = &b.x[r * task.input_dim() + 5];
    int parity = 0;
    for (int j = 0; j < 3; ++j) parity ^= static_cast<int>(v[task.subsets()[b.tasks[r] * 3 + j]]);
    EXPECT_EQ(b.labels[r], parity);
    ones += b.labels[r];
  }
  EXPECT_NEAR(ones / 4000.0, 0.5, 0.05);  // labels are balanced, not constant
}

TEST(SparseParity, DataBitsAreFairCoins) {
  CpuBackend backend;
  SparseParityTask task(backend, small_task(2, 100, 3, 1.0), 99);
  const Batch b = draw_batch(backend, task, 0, 20000);
  for (int bit : {0, 31, 32, 95, 96, 99}) {  // around the word and block boundaries
    double mean = 0;
    for (int r = 0; r < 20000; ++r) mean += b.x[r * task.input_dim() + 2 + bit];
    EXPECT_NEAR(mean / 20000, 0.5, 0.02) << "bit " << bit;
  }
}

TEST(SparseParity, SubsetsHoldDistinctBitsAndDifferAcrossTasks) {
  const auto s = draw_subsets(3, 50, 100, 3);
  std::set<std::vector<int32_t>> seen;
  for (int t = 0; t < 50; ++t) {
    std::vector<int32_t> subset(s.begin() + t * 3, s.begin() + t * 3 + 3);
    EXPECT_LT(subset[0], subset[1]);  // sorted and distinct
    EXPECT_LT(subset[1], subset[2]);
    EXPECT_GE(subset[0], 0);
    EXPECT_LT(subset[2], 100);
    EXPECT_TRUE(seen.insert(subset).second) << "task " << t << " repeats an earlier subset";
  }
}

TEST(SparseParity, TooManyTasksForTheSubsetsIsAConfigError) {
  EXPECT_THROW(draw_subsets(0, 4, 3, 2), ConfigError);  // C(3, 2) = 3 < 4
}

TEST(SparseParity, SameSeedAndStepGiveTheSameBatch) {
  CpuBackend backend;
  SparseParityTask a(backend, small_task(5, 100, 3, 1.4), 11), b(backend, small_task(5, 100, 3, 1.4), 11);
  const Batch b1 = draw_batch(backend, a, 42, 500), b2 = draw_batch(backend, b, 42, 500);
  EXPECT_EQ(b1.x, b2.x);
  EXPECT_EQ(b1.labels, b2.labels);
  const Batch other_step = draw_batch(backend, a, 43, 500);
  EXPECT_NE(b1.x, other_step.x);
  SparseParityTask c(backend, small_task(5, 100, 3, 1.4), 12);
  EXPECT_NE(b1.x, draw_batch(backend, c, 42, 500).x);
}

TEST(SparseParity, EvalRowsAreFixedPerTaskAndSplittable) {
  CpuBackend backend;
  SparseParityTask task(backend, small_task(4, 20, 3, 1.4), 5);
  const int d = task.input_dim();
  Buffer<float> whole(backend, 100 * d), tail(backend, 40 * d);
  Buffer<int32_t> y(backend, 100), y_tail(backend, 40), t(backend, 100);
  task.eval_rows(2, 0, 100, whole.data(), y.data(), t.data());
  task.eval_rows(2, 60, 40, tail.data(), y_tail.data(), t.data());
  const auto w = whole.download(), tl = tail.download();
  EXPECT_TRUE(std::equal(tl.begin(), tl.end(), w.begin() + 60 * d));  // rows 60..99 again
  for (int32_t task_id : t.download()) EXPECT_EQ(task_id, 2);
}

}  // namespace
}  // namespace skillrun

namespace skillrun {
namespace {
// The bit layout documented in docs/ARCHITECTURE.md, recomputed from philox_draw alone: the
// CUDA kernel and any future rewrite of parity_sample must keep producing exactly these bits.
TEST(SparseParity, BitsFollowTheDocumentedPhiloxLayout) {
  CpuBackend backend;
  const int n_tasks = 4, n_bits = 100;  // words 1..4: bits 96..99 sit in word 4 = block 1, lane 0
  SparseParityTask task(backend, small_task(n_tasks, n_bits, 3, 1.4), 77);
  const int64_t step = 12345;
  const Batch b = draw_batch(backend, task, step, 64);
  const auto thresholds = zipf_thresholds(task.frequencies());
  for (uint32_t s = 0; s < 64; ++s) {
    const uint32_t task_word = philox_draw(77, RngStream::TrainBatch, step, s, 0).v[0];
    int expected_task = 0;
    while (expected_task < n_tasks - 1 && task_word >= thresholds[expected_task]) ++expected_task;
    ASSERT_EQ(b.tasks[s], expected_task) << "sample " << s;
    for (int bit = 0; bit < n_bits; ++bit) {
      const uint32_t word = 1 + bit / 32;
      const uint32_t w = philox_draw(77, RngStream::TrainBatch, step, s, word / 4).v[word % 4];
      ASSERT_EQ(b.x[s * task.input_dim() + n_tasks + bit], static_cast<float>((w >> (bit % 32)) & 1u))
          << "sample " << s << " bit " << bit;
    }
  }
}
}  // namespace
}  // namespace skillrun

namespace skillrun {
namespace {
// The packed form the coalesced CUDA kernel uses (parity_words, parity_value) gives exactly the
// row, label and task of parity_sample, for tails of every length (n_bits % 32), fixed and
// drawn tasks, and subsets reaching the last bit.
TEST(SparseParity, PackedWordsGiveTheRowsOfParitySample) {
  for (const int n_bits : {1, 31, 32, 33, 64, 95, 100, 129, 250}) {
    const int n_tasks = 5, k = 3;
    std::vector<int32_t> subsets;
    for (int t = 0; t < n_tasks; ++t)
      for (int j = 0; j < k; ++j) subsets.push_back((t * 7 + j * 13 + (j == k - 1 ? n_bits - 1 : 0)) % n_bits);
    const std::vector<uint32_t> thresholds = {1u << 31, 3u << 30, 7u << 29, 15u << 28};
    const ParityTables tables{subsets.data(), thresholds.data()};
    for (const int32_t fixed : {-1, 3}) {
      ParityDraw d;
      d.seed = 2026;
      d.stream = fixed < 0 ? RngStream::TrainBatch : RngStream::EvalSet;
      d.step_or_task = fixed < 0 ? 411u : 3u;
      d.fixed_task = fixed;
      d.n_tasks = n_tasks;
      d.n_bits = n_bits;
      d.k = k;
      for (uint32_t sample = 0; sample < 50; ++sample) {
        std::vector<float> row(static_cast<std::size_t>(n_tasks + n_bits));
        int32_t label = -1, packed_label = -1;
        const int32_t task = parity_sample(d, tables, sample, row.data(), &label);
        std::vector<uint32_t> words(parity_word_count(n_bits));
        const int32_t packed_task = parity_words(d, tables, sample, words.data(), &packed_label);
        ASSERT_EQ(packed_task, task) << n_bits << " bits, sample " << sample;
        ASSERT_EQ(packed_label, label) << n_bits << " bits, sample " << sample;
        for (int col = 0; col < n_tasks + n_bits; ++col)
          ASSERT_EQ(parity_value(col, n_tasks, packed_task, words.data()), row[static_cast<std::size_t>(col)])
              << n_bits << " bits, sample " << sample << ", column " << col;
      }
    }
  }
}
}  // namespace
}  // namespace skillrun
