// Reading run directories back: finding them under the paths given to `skillrun analyze`, and
// loading config.json, metrics.csv and summary.json as a run wrote them (io/run_dir.h). A run
// killed hard may lack summary.json or end metrics.csv with a partial line; both are read.
#pragma once
#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "analysis/acquisition.h"
#include "core/strings.h"
#include "io/run_dir.h"

namespace skillrun {

// The status shown for a run without summary.json (killed before it was first written).
inline constexpr const char* kStatusIncomplete = "incomplete";
// config.json task.type of the runs `skillrun analyze` reads (a config without one is sparse_parity).
inline constexpr const char* kTaskSparseParity = "sparse_parity";
inline constexpr const char* kTaskIclLinreg = "icl_linreg";

// Reads CSV text as a run killed while writing it may leave it: `check_header` gets the fields
// of line 1 (and throws for a wrong header), `parse_row` the fields of each data line and
// returns false for one it cannot read. A last line without its newline, or a last line that
// parse_row rejects, is dropped: the return value is then true (truncated). Any other rejected
// line throws RuntimeError naming `source` and the line number. An empty text has no header.
bool read_csv_rows(const std::string& text, const std::string& source,
                   const std::function<void(const std::vector<std::string>&)>& check_header,
                   const std::function<bool(const std::vector<std::string>&)>& parse_row);

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

// dir/config.json parsed; RuntimeError naming the file when it is missing or malformed.
nlohmann::json read_config_json(const std::filesystem::path& dir);
// config task.type; kTaskSparseParity when absent.
std::string task_type(const nlohmann::json& config);
// dir/summary.json parsed, with its status and message (an unknown status is logged); empty
// when there is none. RuntimeError naming the file when it is malformed or has no status.
std::optional<nlohmann::json> read_summary_json(const std::filesystem::path& dir, std::string& status,
                                                std::string& message);
// The number at a dotted key of config; RuntimeError naming `file` when missing or not a number.
double number_at(const nlohmann::json& config, const std::string& key, const std::filesystem::path& file);

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
