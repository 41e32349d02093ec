// `skillrun devices`: lists the devices this build can run on (GPUs with name, memory and
// compute capability; the CPU) and which one `--device auto` would pick.
#pragma once
#include <functional>

#include <CLI/CLI.hpp>

namespace skillrun {

// Adds the `devices` subcommand to `app`; `action` is set to the code that runs it (returns the
// exit code). main() runs `action` when the returned subcommand was parsed.
CLI::App* add_devices_command(CLI::App& app, std::function<int()>& action);

// Prints the device list to stdout; returns 0.
int cmd_devices();

}  // namespace skillrun
