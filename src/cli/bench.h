// `skillrun bench`: timings on the chosen backend. Two forms:
//   skillrun bench CONFIG [--set K=V] [--device D] [--steps N] [--warmup N]
//     ms per phase of a training step, beside the step's GEMMs timed alone;
//   skillrun bench --msign ROWSxCOLS [--msign-method ns5|polar_express|svd] [--repeats N]
//                  [--warmup N] [--device D] [--precision P] [--pack R]
//     msign alone on a random ROWS x COLS matrix (R of them in one call): median microseconds
//     per call, and per replay of the call captured as a graph where the backend has graphs.
// Registered from main() by add_bench_command, so the options and code stay in src/cli/bench.cpp.
#pragma once
#include <functional>

namespace CLI {
class App;
}

namespace skillrun {

// Adds the `bench` subcommand to `app`; `action` is set to run it and return the exit code
// (0 ok, 1 runtime failure; a bad shape, method or option combination throws UsageError: 2).
CLI::App* add_bench_command(CLI::App& app, std::function<int()>& action);

}  // namespace skillrun
