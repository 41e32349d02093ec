// `skillrun status PATH...`: what the runs under the paths are doing (src/cli/status.cpp).
#pragma once
#include <functional>

namespace CLI {
class App;
}

namespace skillrun {

// Adds the `status` subcommand to `app`; `action` runs it: 0, or 2 for a path that is no
// directory or holds no run.
CLI::App* add_status_command(CLI::App& app, std::function<int()>& action);

}  // namespace skillrun
