// --device is applied as one more override so it is validated like the config key.
#include "cli/common.h"

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <limits>

#include <fmt/format.h>

#include "core/error.h"
#include "core/strings.h"

namespace skillrun {

ExperimentConfig load_config(const CommonOptions& options) {
  std::vector<std::string> overrides = options.overrides;
  if (!options.device.empty()) overrides.push_back("device=" + options.device);
  return load_experiment(options.config_path, overrides);
}

std::size_t pack_memory_budget(bool gpu) {
  if (const char* env = std::getenv("SKILLRUN_PACK_MEMORY_MB"); env != nullptr && *env != '\0') {
    const auto mb = parse_int(env);
    if (!mb || *mb < 1) throw UsageError(fmt::format("SKILLRUN_PACK_MEMORY_MB=\"{}\": expected a number of MiB >= 1", env));
    return static_cast<std::size_t>(*mb) << 20;
  }
  if (gpu && cuda_memory_bytes() > 0) return cuda_memory_bytes() / 10 * 9;
  return static_cast<std::size_t>(::sysconf(_SC_PHYS_PAGES)) * static_cast<std::size_t>(::sysconf(_SC_PAGESIZE)) /
         10 * 8;
}

std::size_t raise_open_file_limit() {
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) != 0) return 1024;  // the usual default; the check stays useful
  if (limit.rlim_cur < limit.rlim_max) {
    rlimit raised = limit;
    raised.rlim_cur = limit.rlim_max;
    if (::setrlimit(RLIMIT_NOFILE, &raised) == 0) limit = raised;
  }
  return limit.rlim_cur == RLIM_INFINITY ? std::numeric_limits<std::size_t>::max()
                                         : static_cast<std::size_t>(limit.rlim_cur);
}

void check_open_file_limit(std::size_t runs, const std::string& what) {
  const std::size_t limit = raise_open_file_limit();
  const std::size_t need = kFilesReserved + kFilesPerPackedRun * runs;
  if (need <= limit) return;
  const std::size_t fits = limit > kFilesReserved ? (limit - kFilesReserved) / kFilesPerPackedRun : 0;
  throw UsageError(fmt::format(
      "{}: a pack of {} runs holds about {} open files ({} per run and {} for the process), but this process may "
      "open {} (ulimit -n, raised to the hard limit): use --pack {} or less, or raise the hard limit (ulimit -Hn)",
      what, runs, need, kFilesPerPackedRun, kFilesReserved, limit, std::max<std::size_t>(1, fits)));
}

}  // namespace skillrun
