// Running a sweep's runs as child processes, a few at a time. A child is a whole `skillrun run`,
// so a crash, an exit(1) or an OOM kill ends that run only. SIGINT/SIGTERM/SIGUSR1 sent to the
// sweep stop new launches and are forwarded to the running children (each checkpoints and
// exits 3), which are then waited for: the contract a Slurm `--signal=B:USR1@N` relies on.
#pragma once
#include <cstddef>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace skillrun {

struct ChildSpec {
  std::vector<std::string> argv;  // argv[0]: the program's path, as execv takes it
  std::filesystem::path output;   // stdout and stderr, appended; stdin is /dev/null
  std::vector<std::string> env;   // NAME=VALUE set on top of this process's environment
  std::vector<int> inherit_fds;   // O_CLOEXEC descriptors kept open in this child (run locks)
};

struct ChildExit {
  int exit_code = -1;  // -1 when killed by a signal
  int signal = 0;      // the signal that killed it, 0 when it exited
};

// Starts jobs 0..n-1 in order, at most `slots` at once. launch(i, slot) is called when a slot
// is free (slot in [0, slots), unique among the running children, for GPU pinning) and returns
// the child to start, or nothing to skip job i; finished(i, exit) when job i's process ends.
// Returns 0, or the first stop signal received: no job is launched after it.
int run_children(std::size_t n, int slots, const std::function<std::optional<ChildSpec>(std::size_t, int)>& launch,
                 const std::function<void(std::size_t, const ChildExit&)>& finished);

}  // namespace skillrun
