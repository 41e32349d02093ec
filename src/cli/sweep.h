// `skillrun sweep`: expands a sweep file and runs its runs as child `skillrun run --resume`
// processes (src/sweep/). Registered from main() by add_sweep_command, so the subcommand's
// options and code stay in src/cli/sweep.cpp.
#pragma once
#include <functional>

namespace CLI {
class App;
}

namespace skillrun {

// Adds the `sweep` subcommand to `app`; `action` is set to run it and return the exit code:
// 0 no run failed, 1 a run failed, 2 usage or config error (or a run directory whose config
// differs), 3 interrupted by SIGINT/SIGTERM/SIGUSR1 (runs checkpointed; run it again to resume).
CLI::App* add_sweep_command(CLI::App& app, std::function<int()>& action);

}  // namespace skillrun
