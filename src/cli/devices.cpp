// `skillrun devices`: what is usable on this machine. Never fails for a missing GPU or driver:
// that is the question it answers.
#include "cli/devices.h"

#include <cstdio>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "backend/cpu/cpu_backend.h"
#ifdef SKILLRUN_HAVE_CUDA
#include "backend/cuda/cuda_factory.h"
#endif

namespace skillrun {

int cmd_devices() {
#ifdef SKILLRUN_HAVE_CUDA
  for (const std::string& line : describe_cuda_devices()) std::printf("%s\n", line.c_str());
  const bool cuda = cuda_device_count() > 0;
#else
  std::printf("cuda: none (this skillrun was built without CUDA)\n");
  const bool cuda = false;
#endif
  CpuBackend cpu;
  std::printf("cpu     %s  usable\n", cpu.name().c_str());
  std::printf("--device auto picks: %s\n", cuda ? "cuda:0" : "cpu");
  std::fflush(stdout);
  return 0;
}

CLI::App* add_devices_command(CLI::App& app, std::function<int()>& action) {
  CLI::App* cmd = app.add_subcommand("devices", "list usable devices (GPUs: name, memory, compute capability; CPU)");
  action = [] { return cmd_devices(); };
  return cmd;
}

}  // namespace skillrun
