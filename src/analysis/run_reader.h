// Reading run directories back: finding them under the paths given to `skillrun analyze`, and
// loading config.json, metrics.csv and summary.json as a run wrote them (io/run_dir.h). A run
// killed hard may lack summary.json or end metrics.csv with a partial line; both are read.
#pragma once
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "analysis/acquisition.h"
#include "core/strings.h"
#include "io/run_dir.h"

namespace skillrun {

// The status shown for a run without summary.json (killed before it was first written).
inline constexpr const char* kStatusIncomplete = "incomplete";

struct MetricsTable {
  int n_tasks = 0;                // loss_k columns in the header
  std::vector<MetricsRow> rows;   // the whole rows, in file order
  bool truncated = false;         // a partial last line was dropped
};

// Parses metrics.csv text. A last line without its newline, or one that does not parse, is
// dropped (a killed run) and sets `truncated`; any other malformed line throws RuntimeError
// naming `source` and the line number.
MetricsTable parse_metrics_csv(const std::string& text, const std::string& source);

struct RunRecord {
  std::filesystem::path dir;
  nlohmann::json config;          // config.json: the resolved config
  MetricsTable metrics;
  bool has_summary = false;
  std::string status = kStatusIncomplete;  // summary.json's status (to_string(RunStatus)) or kStatusIncomplete
  std::string message;                     // summary.json's message
  double tau_bits = 0;                     // summary.json's, else config eval.tau_bits
  AcquisitionTimes summary_T_k;            // summary.json's T_k (empty without one)
};

// Reads one run directory. Throws RuntimeError naming the file for a missing or malformed
// config.json, unreadable files, or a metrics.csv whose columns disagree with task.n_tasks.
// Logs a warning for a truncated metrics.csv.
RunRecord read_run(const std::filesystem::path& dir);

// Every directory at or below each path that holds a metrics.csv, sorted and without
// repeats. Throws UsageError for a path that does not exist or is not a directory.
std::vector<std::filesystem::path> discover_runs(const std::vector<std::filesystem::path>& paths);

// The value at a dotted key of a JSON object ("optimizer.lr"); null when absent.
nlohmann::json value_at(const nlohmann::json& object, const std::string& dotted_key);

}  // namespace skillrun
