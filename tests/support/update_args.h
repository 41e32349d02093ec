// Backend::update's arguments in one call, for the tests that drive the run-table updates
// directly (the optimizer builds them field by field, src/optim/pack_optimizer.cpp).
#pragma once
#include <cstddef>
#include <cstdint>

#include "backend/backend.h"

namespace skillrun::testing {

struct Strided {
  float* p = nullptr;
  std::size_t stride = 0;
};

// w and g at run * param_stride; m and v at slice * their strides; scratch at entry * its stride.
inline UpdateArgs update_args(UpdateKind kind, float* w, const float* g, std::size_t param_stride, Strided m,
                              Strided v, Strided scratch, std::size_t n, const RunTable& table, bool nesterov = false,
                              bool decoupled = false, int64_t t = 0) {
  return UpdateArgs(kind, w, g, param_stride, n, table)
      .state(m.p, m.stride, v.p, v.stride)
      .scratch_at(scratch.p, scratch.stride)
      .flags(nesterov, decoupled, t);
}

}  // namespace skillrun::testing
