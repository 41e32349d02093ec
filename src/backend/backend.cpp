// Backend's defaults for the optional capabilities (step graphs, fp64 ops): a backend without
// them inherits these, which name the op and the backend. The registry refuses precision fp64 for such a backend before
// any run starts, so reaching one of these is a programming error, reported as a RuntimeError.
#include <string>

#include "backend/backend.h"
#include "core/error.h"

namespace skillrun {

void Backend::no_fp64(const char* op) const {
  throw RuntimeError(std::string("fp64 ") + op + " is not available on " + name() +
                     " (precision fp64 runs on the CPU backend)");
}

void Backend::begin_step_capture(uint32_t) { throw RuntimeError(name() + " has no step graphs"); }
void Backend::end_step_capture() { throw RuntimeError(name() + " has no step graphs"); }
void Backend::launch_step_graph(uint32_t) { throw RuntimeError(name() + " has no step graphs"); }

void Backend::gemm(Trans, Trans, int, int, int, double, const double*, int, const double*, int, double, double*,
                   int) {
  no_fp64("gemm");
}
void Backend::fill(double*, std::size_t, double) { no_fp64("fill"); }
void Backend::axpby(double*, const double*, std::size_t, double, double) { no_fp64("axpby"); }
double Backend::sum_squares(const double*, std::size_t) { no_fp64("sum_squares"); }
void Backend::sgd_update(double*, const double*, double*, std::size_t, double, double, bool, double) {
  no_fp64("sgd_update");
}
void Backend::nmd_update(double*, const double*, double*, std::size_t, double, double, double) {
  no_fp64("nmd_update");
}
void Backend::adam_update(double*, const double*, double*, double*, std::size_t, double, double, double, double,
                          double, bool, int64_t) {
  no_fp64("adam_update");
}
void Backend::signgd_update(double*, const double*, double*, std::size_t, double, double, double) {
  no_fp64("signgd_update");
}
void Backend::momentum_accumulate(double*, const double*, double*, std::size_t, double, bool) {
  no_fp64("momentum_accumulate");
}
void Backend::msign_svd(const double*, double*, int, int) { no_fp64("msign_svd"); }

}  // namespace skillrun
