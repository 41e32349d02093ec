// The memory estimate that rejects configs this machine could never hold, before any buffer
// is allocated: saturating arithmetic (no overflow), the largest term named in the error.
#include <unistd.h>

#include <array>
#include <cstdio>
#include <limits>

#include "config/experiment.h"
#include "core/error.h"

namespace skillrun {
namespace {

uint64_t sat_add(uint64_t a, uint64_t b) {
  uint64_t r;
  return __builtin_add_overflow(a, b, &r) ? std::numeric_limits<uint64_t>::max() : r;
}
uint64_t sat_mul(uint64_t a, uint64_t b) {
  uint64_t r;
  return __builtin_mul_overflow(a, b, &r) ? std::numeric_limits<uint64_t>::max() : r;
}

// The three terms of the estimate, in floats (4 bytes each), so the largest can be blamed.
struct MemoryTerms {
  uint64_t parameters;  // weights, grads and two optimizer states: 4 P
  uint64_t batch;       // inputs, activations and their grads, ReLU masks, per-example scratch
  uint64_t eval;        // the fixed eval set: n_tasks * samples_per_task examples
};

uint64_t as_count(int64_t v) { return v > 0 ? static_cast<uint64_t>(v) : 0; }

MemoryTerms memory_terms(const ExperimentConfig& c) {
  if (c.is_icl()) {
    // icl_linreg: about 16 d x d matrices (iterate, gradient, fixed operands, optimizer state and
    // msign scratch) of 8-byte doubles, counted as 2 floats each; no batch, no eval set.
    const uint64_t dd = sat_mul(as_count(c.task.d), as_count(c.task.d));
    return MemoryTerms{sat_mul(dd, 32), 0, 0};
  }
  if (c.task.type == TaskType::AssocMemory) {
    // assoc_memory: W (4 d x d with its gradient and two states) and the embeddings E, U; per
    // row the one-hot query (N), its embedding, H and their gradients (4 d) and the logits, their
    // gradient and per-example scratch (2 M + 8); the eval set is every fact once.
    const uint64_t n = as_count(c.task.n_facts), dd = as_count(c.task.dim), m = as_count(c.task.n_answers);
    const uint64_t row = sat_add(sat_add(n, sat_mul(dd, 4)), sat_add(sat_mul(m, 2), 8));
    return MemoryTerms{sat_add(sat_mul(sat_mul(dd, dd), 16), sat_mul(sat_add(sat_mul(n, dd), sat_mul(dd, m)), 4)),
                       sat_mul(as_count(c.train.batch_size), row), sat_mul(n, sat_add(n, 4))};
  }
  const uint64_t d = sat_add(as_count(c.task.n_tasks), as_count(c.task.n_bits));  // input dim D
  const uint64_t w = as_count(c.model.width);
  const uint64_t hidden = c.model.depth > 1 ? as_count(c.model.depth) - 1 : 0;
  const uint64_t batch = as_count(c.train.batch_size);

  // Layers D -> w (hidden times, the first from D, the rest from w) -> 2, in closed form so a
  // huge depth costs no time. P = sum(in * out + out).
  uint64_t params;
  if (hidden == 0) {
    params = sat_add(sat_mul(d, 2), 2);
  } else {
    params = sat_add(sat_mul(d, w), w);
    params = sat_add(params, sat_mul(hidden - 1, sat_add(sat_mul(w, w), w)));
    params = sat_add(params, sat_add(sat_mul(w, 2), 2));
  }
  const uint64_t layer_outputs = sat_add(sat_mul(hidden, w), 2);
  // The CUDA backend's ReLU masks (cuBLASLt epilogues, docs/CUDA.md): one bit per hidden
  // activation, each row padded to 128 bits, i.e. 4 floats per 128 columns. The CPU keeps none;
  // counted anyway, as the estimate is an upper bound whatever the device (3% of an activation).
  const uint64_t mask_floats = sat_mul(hidden, sat_mul(sat_add(w, 127) / 128, 4));

  MemoryTerms t{};
  t.parameters = sat_mul(params, 4);
  t.batch = sat_add(sat_mul(batch, sat_add(sat_add(d, sat_mul(layer_outputs, 2)), mask_floats)), sat_mul(batch, 8));
  t.eval =
      sat_mul(sat_mul(as_count(c.task.n_tasks), as_count(c.eval.samples_per_task)), sat_add(d, 4));
  return t;
}

// Decimal units, one decimal: "1.2 TB", "23.4 GB".
std::string format_bytes(uint64_t bytes) {
  static constexpr std::array<const char*, 7> kUnits = {"B", "kB", "MB", "GB", "TB", "PB", "EB"};
  double v = static_cast<double>(bytes);
  std::size_t unit = 0;
  while (v >= 1000 && unit + 1 < kUnits.size()) {
    v /= 1000;
    ++unit;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, unit == 0 ? "%.0f %s" : "%.1f %s", v, kUnits[unit]);
  return buf;
}

uint64_t physical_memory_bytes() {
  const long pages = sysconf(_SC_PHYS_PAGES);
  const long page_size = sysconf(_SC_PAGESIZE);
  if (pages <= 0 || page_size <= 0) return 0;  // unknown: the check is skipped
  return sat_mul(static_cast<uint64_t>(pages), static_cast<uint64_t>(page_size));
}

}  // namespace

void check_memory_fits(const ExperimentConfig& c) {
  const uint64_t available = physical_memory_bytes();
  const uint64_t needed = estimated_memory_bytes(c);
  if (available == 0 || needed <= available) return;
  const MemoryTerms t = memory_terms(c);
  const char* culprit = "train.batch_size";
  if (t.parameters > t.batch && t.parameters >= t.eval) culprit = c.is_icl() ? "task.d" : "model.width";
  if (t.eval > t.batch && t.eval > t.parameters) culprit = "eval.samples_per_task";
  throw ConfigError(culprit, "buffers of " + format_bytes(needed) +
                                 " cannot be allocated (this machine has " +
                                 format_bytes(available) + ")");
}


std::size_t estimated_memory_bytes(const ExperimentConfig& c) {
  const MemoryTerms t = memory_terms(c);
  const uint64_t floats = sat_add(sat_add(t.parameters, t.batch), t.eval);
  const uint64_t bytes = sat_mul(floats, 4);
  return bytes > std::numeric_limits<std::size_t>::max() ? std::numeric_limits<std::size_t>::max()
                                                         : static_cast<std::size_t>(bytes);
}

}  // namespace skillrun
