// `skillrun bench`: timings on the chosen backend. Two forms:
//   skillrun bench CONFIG [--set K=V] [--device D] [--steps N] [--warmup N]
//     ms per phase of a training step, beside the step's GEMMs timed alone;
//   skillrun bench --msign ROWSxCOLS [--msign-method ns5|polar_express|svd] [--repeats N]
//                  [--warmup N] [--device D] [--precision P] [--pack R]
//     msign alone on a random ROWS x COLS matrix (R of them in one call): median microseconds
//     per call, and per replay of the call captured as a graph where the backend has graphs.
// Registered from main() by add_bench_command, so the options and code stay in src/cli/bench.cpp.
#pragma once
#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

namespace CLI {
class App;
}

namespace skillrun {

// Adds the `bench` subcommand to `app`; `action` is set to run it and return the exit code
// (0 ok, 1 runtime failure; a bad shape, method or option combination throws UsageError: 2).
CLI::App* add_bench_command(CLI::App& app, std::function<int()>& action);

// Seconds per training step of a resolved sparse_parity config, timed over `steps` steps after
// one warm-up step on its own device (a second or two): what `sweep --list` says the runs of a
// sweep cost when none has finished. Empty for icl_linreg configs (no training step to time).
struct StepTiming {
  double seconds_per_step = 0;
  std::string device;  // the backend's name
};
std::optional<StepTiming> time_a_few_steps(const nlohmann::json& resolved_config, int64_t steps = 3);

}  // namespace skillrun
