// The subcommands behind src/main.cpp. Each returns the process exit code (0 ok, 1 runtime
// failure, 2 usage or config error) or throws ConfigError/UsageError/RuntimeError.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace skillrun {

struct CommonOptions {
  std::string config_path;
  std::vector<std::string> overrides;  // --set KEY=VALUE
  std::string device;                  // --device, empty: the config's
};

struct RunOptions {
  CommonOptions common;
  std::string out_dir;  // empty: runs/<name>-<timestamp>
  bool no_progress = false;
  bool resume = false;  // continue out_dir from its latest valid checkpoint
};

// `skillrun pack DIR...`: the runs in these run directories (each holding its config.json)
// trained together as one pack, each resumed from its own checkpoint; finished ones are left.
struct PackOptions {
  std::vector<std::string> dirs;
  bool no_progress = false;
  std::string pack_log;  // where this process's stderr goes (a sweep's pack log), named in each run.log
};

// `skillrun bench` (src/cli/bench.h): a config's step phases, or msign alone with --msign.
struct BenchOptions {
  CommonOptions common;         // CONFIG empty with --msign
  int64_t steps = 20;           // timed steps (config form)
  int64_t warmup = 3;           // untimed steps, or untimed msign calls, first
  std::string msign_shape;      // --msign ROWSxCOLS; empty: the config form
  std::string msign_method = "ns5";  // ns5 | polar_express | svd
  std::string precision = "fp32";    // --precision of the msign form (tf32/bf16 need CUDA)
  int64_t repeats = 50;         // timed msign calls
  int64_t pack = 0;             // --pack R: R copies as one pack against one alone; 0: off
};

// `skillrun analyze PATH...`: see docs/ANALYSIS.md.
struct AnalyzeOptions {
  std::vector<std::string> paths;    // run directories or directories of runs
  std::optional<double> tau_bits;    // --tau; empty: each run's own
  std::string p_list;                // --p "0.5,1"; empty: 0.1, 0.2, ..., 1
  std::string group_by;              // --group-by "a.b,c"; empty: optimizer.type,model.width,optimizer.lr
  std::string select_lr = "coverage";  // --select-lr coverage | coverage:P | final_loss
  std::string compare;               // --compare "a.b,c"; empty: the variants (analysis/variants.h)
  std::string out_dir;               // --out; empty: stdout only
  std::string format = "table";      // --format table | csv | md | json (stdout)
  bool plot = false;                 // --plot: run scripts/plot.py on --out
};

int cmd_run(const RunOptions& options);
int cmd_pack(const PackOptions& options);
int cmd_validate(const CommonOptions& options);
int cmd_bench(const BenchOptions& options);
int cmd_analyze(const AnalyzeOptions& options);

}  // namespace skillrun
