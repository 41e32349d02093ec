// The CUDA backend of a build with CUDA, reached through its module (backend/cuda_module.h):
// opened once, on the first call below, from SKILLRUN_CUDA_MODULE, else next to the running
// executable, else where the build put it; not at all on a machine without an NVIDIA driver
// (unless SKILLRUN_CUDA_MODULE names the module). A module that cannot be opened makes the CUDA
// backend unavailable with the loader's reason, as a missing driver does; nothing else changes.
// A build without CUDA compiles nothing here.
#ifdef SKILLRUN_HAVE_CUDA
#include <dlfcn.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <string>

#include <fmt/format.h>

#include "backend/cuda/cuda_factory.h"
#include "backend/cuda_module.h"
#include "core/error.h"
#include "core/version.h"

namespace skillrun {
namespace {

namespace fs = std::filesystem;

constexpr const char* kModuleFile = "libskillrun_cuda.so";

struct Loaded {
  const CudaModuleApi* api = nullptr;
  std::string problem;  // why api is null
};

// The places to look, in order.
std::vector<fs::path> candidates() {
  std::vector<fs::path> paths;
  if (const char* env = std::getenv("SKILLRUN_CUDA_MODULE"); env != nullptr && *env != '\0') paths.emplace_back(env);
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) paths.push_back(exe.parent_path() / kModuleFile);
#ifdef SKILLRUN_CUDA_MODULE_PATH
  paths.emplace_back(SKILLRUN_CUDA_MODULE_PATH);
#endif
  return paths;
}

// No NVIDIA kernel driver: no GPU can be used, and loading the module (with cuBLAS) would cost
// start-up time for nothing. Containers with GPUs see the driver too (/dev/nvidiactl).
bool nvidia_driver_present() {
  std::error_code ec;
  return fs::exists("/dev/nvidiactl", ec) || fs::exists("/proc/driver/nvidia", ec) ||
         fs::exists("/dev/dxg", ec);  // WSL2's GPU
}

Loaded open_module() {
  Loaded loaded;
  const char* forced = std::getenv("SKILLRUN_CUDA_MODULE");
  if ((forced == nullptr || *forced == '\0') && !nvidia_driver_present()) {
    loaded.problem = "no NVIDIA driver on this machine: no /dev/nvidiactl, /proc/driver/nvidia or /dev/dxg";
    return loaded;
  }
  // The first module that opens and belongs to this build wins; each failure is remembered.
  std::string tried, problems;
  for (const fs::path& path : candidates()) {
    std::error_code ec;
    if (!fs::exists(path, ec)) {
      tried += (tried.empty() ? "" : ", ") + path.string();
      continue;
    }
    void* handle = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (handle == nullptr) {
      const char* err = ::dlerror();
      problems += fmt::format("{}cannot load {}: {}", problems.empty() ? "" : "; ", path.string(),
                              err ? err : "dlopen failed");
      continue;
    }
    const auto entry = reinterpret_cast<CudaModuleEntry>(::dlsym(handle, kCudaModuleEntry));
    const CudaModuleApi* api = entry != nullptr ? entry() : nullptr;
    if (api == nullptr || api->version != kCudaModuleVersion || std::string(api->commit) != git_commit()) {
      // Kept open: harmless, and closing code that may have run is not.
      problems += fmt::format("{}{} is not the CUDA module of this skillrun (commit {}; rebuild it)",
                              problems.empty() ? "" : "; ", path.string(), git_commit());
      continue;
    }
    loaded.api = api;
    return loaded;
  }
  loaded.problem = !problems.empty() ? problems
                                     : fmt::format("the CUDA module {} was not found (looked in: {})", kModuleFile,
                                                   tried);
  return loaded;
}

const Loaded& module() {
  static const Loaded loaded = open_module();  // once, thread-safe
  return loaded;
}

}  // namespace

int cuda_device_count() noexcept {
  try {
    const Loaded& m = module();
    return m.api ? m.api->device_count() : 0;
  } catch (...) {
    return 0;
  }
}

std::string cuda_unavailable_reason() {
  const Loaded& m = module();
  return m.api ? m.api->unavailable_reason() : m.problem;
}

std::size_t cuda_device_memory_bytes() noexcept {
  try {
    const Loaded& m = module();
    return m.api ? m.api->device_memory_bytes() : 0;
  } catch (...) {
    return 0;
  }
}

std::unique_ptr<Backend> make_cuda_backend(int device, Precision precision) {
  const Loaded& m = module();
  if (!m.api) throw RuntimeError("no CUDA backend: " + m.problem);
  return m.api->make_backend(device, precision);
}

std::vector<std::string> describe_cuda_devices() {
  const Loaded& m = module();
  if (!m.api) return {"cuda: none (" + m.problem + ")"};
  return m.api->describe_devices();
}

}  // namespace skillrun

#endif  // SKILLRUN_HAVE_CUDA
