// Reading run directories back: finding them under the paths given to `skillrun analyze`, and
// loading config.json, metrics.csv and summary.json as a run wrote them (io/run_dir.h). A run
// killed hard may lack summary.json or end metrics.csv with a partial line; both are read.
// metrics.csv is streamed a line at a time: what is kept of it is a few numbers per row (the
// step and mean loss) and per subtask (T_k), never the file.
//
// Values no run could have written make the run directory malformed (RuntimeError naming the
// file and line, or the file and JSON path): a config.json the config loader rejects, steps
// that do not increase, a non-finite loss in a row that is not the last (a run stops at its
// first non-finite eval, so only a diverged run's last row has one).
#pragma once
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <istream>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "analysis/acquisition.h"
#include "config/experiment.h"
#include "core/strings.h"
#include "io/run_dir.h"

namespace skillrun {

// The status shown for a run without summary.json (killed before it was first written).
inline constexpr const char* kStatusIncomplete = "incomplete";

// What a row parser makes of the fields of one data line of a metrics.csv.
struct RowVerdict {
  std::string malformed;  // why the line cannot be read ("loss_1: \"x\" is not a number"); empty when it was
  std::string nonfinite;  // the first column that only a run's last row may hold non-finite; empty: none
};

// fields[i] as a number into `out`; false, with `why` naming header[i] and showing the field
// (quoted, escaped, cut at 40 bytes), when it is not one.
bool number_field(const std::vector<std::string>& fields, const std::vector<std::string>& header, std::size_t i,
                  double& out, std::string& why);

// Reads CSV text as a run killed while writing it may leave it, one line at a time:
// `check_header` gets the fields of line 1 (and throws for a wrong header), `parse_row` the
// fields of each data line (as many as the header's; field 0, the step, already read). A last
// line without its newline, or a last line that parse_row rejects, is dropped: the return value
// is then true (truncated). Throws RuntimeError naming `source` and the line, and why, for any
// other rejected line, a step that does not increase, or a row after one with a non-finite
// loss. An empty text has no header.
bool read_csv_rows(std::istream& in, const std::string& source,
                   const std::function<void(const std::vector<std::string>&)>& check_header,
                   const std::function<RowVerdict(const std::vector<std::string>&, int64_t step)>& parse_row);

// The header of a metrics.csv, and whether its partial last line was dropped.
struct MetricsShape {
  int n_tasks = 0;         // loss_k columns in the header (0 without a header)
  bool truncated = false;  // a partial last line was dropped
};

// Streams metrics.csv: `on_row` gets each whole row in file order (one MetricsRow reused for
// all: copy what you keep). Malformed files throw RuntimeError as read_csv_rows says, and so
// does a header whose loss columns are not `n_tasks` (when given).
MetricsShape read_metrics_csv(std::istream& in, const std::string& source,
                              const std::function<void(const MetricsRow&)>& on_row,
                              std::optional<int> n_tasks = std::nullopt);

struct MetricsTable {
  int n_tasks = 0;                // loss_k columns in the header
  std::vector<MetricsRow> rows;   // the whole rows, in file order
  bool truncated = false;         // a partial last line was dropped
};
// read_metrics_csv of a text, keeping every row (small files and tests).
MetricsTable parse_metrics_csv(const std::string& text, const std::string& source);

// What the analysis keeps of a sparse_parity metrics.csv, gathered row by row.
struct MetricsCurves {
  MetricsCurves(int n_tasks, double tau_bits) : n_tasks(n_tasks), acquisition(n_tasks, tau_bits) {}
  void add(const MetricsRow& row);

  int n_tasks;
  AcquisitionTracker acquisition;      // T_k at its tau_bits
  std::vector<int64_t> steps;          // one per row
  std::vector<double> mean_loss_bits;  // one per row
  bool truncated = false;
};

// config.json as written and as the config loader reads it.
struct RunConfig {
  nlohmann::json json;      // as written (group keys and reports show its values)
  ExperimentConfig config;  // parse_experiment of it: a config `skillrun run` accepts
};
// dir/config.json; RuntimeError naming the file (and the JSON path) when it is missing,
// malformed, or not a config a run could have had.
RunConfig read_run_config(const std::filesystem::path& dir);

// dir/summary.json parsed, with its status and message (an unknown status is logged); empty
// when there is none. RuntimeError naming the file when it is malformed or has no status.
std::optional<nlohmann::json> read_summary_json(const std::filesystem::path& dir, std::string& status,
                                                std::string& message);
// summary.json's `key` when there is one: a finite number > 0 (RuntimeError naming the file otherwise).
std::optional<double> positive_summary_number(const nlohmann::json& summary, const std::string& key,
                                              const std::filesystem::path& dir);

// Opens dir/metrics.csv for streaming; RuntimeError naming it when it cannot be read.
std::ifstream open_metrics_csv(const std::filesystem::path& dir);

struct RunRecord {
  std::filesystem::path dir;
  nlohmann::json config;        // config.json as written
  double zipf_exponent = 0;     // task.zipf_exponent (validated)
  // assoc_memory runs: the groups' frequencies (the Zipf p_k of n_tasks otherwise: empty) and
  // the paper's predicted loss-vs-steps exponent for the run's optimizer (fits.h).
  std::vector<double> stream_p;
  std::optional<double> assoc_predicted_alpha_s;
  MetricsCurves metrics{0, 0};  // T_k at the τ the run was read with
  bool has_summary = false;
  std::string status = kStatusIncomplete;  // summary.json's status (to_string(RunStatus)) or kStatusIncomplete
  std::string message;                     // summary.json's message
  double tau_bits = 0;                     // the run's own: summary.json's, else config eval.tau_bits
  AcquisitionTimes summary_T_k;            // summary.json's T_k (empty without one)
  // How the run was made, beyond its config: summary.json's `device`, `git_commit` and
  // `precision` (those it has, as strings).
  std::map<std::string, std::string> provenance;
};

// Reads one sparse_parity run directory, T_k at `tau_bits` (empty: the run's own τ). Throws
// RuntimeError naming the file for a missing or malformed config.json or summary.json,
// unreadable files, a malformed metrics.csv, or one whose columns disagree with task.n_tasks.
// Logs a warning for a truncated metrics.csv.
RunRecord read_run(const std::filesystem::path& dir, std::optional<double> tau_bits = std::nullopt);

// Every directory at or below each path that holds a metrics.csv, sorted and without
// repeats. Throws UsageError for a path that does not exist or is not a directory. A directory
// below them that cannot be read is skipped with a warning naming it and why.
std::vector<std::filesystem::path> discover_runs(const std::vector<std::filesystem::path>& paths);

// The value at a dotted key of a JSON object ("optimizer.lr"); null when absent.
nlohmann::json value_at(const nlohmann::json& object, const std::string& dotted_key);

}  // namespace skillrun
