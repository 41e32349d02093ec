// `skillrun analyze` for icl_linreg runs (in-context linear regression, paper Section 5 /
// Fig. 5): iterations to reach relative distance <= epsilon, per optimizer and per pair of
// spectra (sigma_x, sigma_w), the median over seeds at the best learning rate. Reads the run
// directories the icl trainer writes (config.json, metrics.csv with step, loss, relative_loss,
// distance, relative_distance and mode_<i> columns, summary.json with steps_to_epsilon).
#pragma once
#include <cstdint>
#include <filesystem>
#include <functional>
#include <istream>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "analysis/summary_tables.h"

namespace skillrun {

// One of task.sigma_x / task.sigma_w: {"kappa": K} (condition number) or {"exponent": E}.
struct Spectrum {
  std::string kind;  // "kappa" or "exponent"
  double value = 0;
  std::string label() const;  // "kappa=100", "exponent=1"
  auto operator<=>(const Spectrum&) const = default;
};
// task.<key> of a config; RuntimeError naming `config_file` unless it holds exactly one of
// kappa / exponent, a number.
Spectrum spectrum_at(const nlohmann::json& config, const std::string& key, const std::filesystem::path& config_file);

// What the analysis reads of one eval row of an icl metrics.csv.
struct IclRow {
  int64_t step = 0;
  double loss = 0;
  double relative_distance = 0;
};
// Streams an icl metrics.csv: `on_row` gets each whole row in file order; returns true when a
// partial last line was dropped. Header: step, wall_s, then named columns among which loss and
// relative_distance; every field a number ("nan" included). A partial last line is dropped as
// in read_metrics_csv; any other malformed line, a header without those columns, steps that do
// not increase or a non-finite loss or relative_distance before the last row throw
// RuntimeError naming `source` and the line.
bool read_icl_metrics_csv(std::istream& in, const std::string& source,
                          const std::function<void(const IclRow&)>& on_row);

// Config keys that, besides optimizer.type and the two spectra, tell groups apart; a table shows
// one as a column only when runs of the same optimizer differ in it (the headline gives the
// others: shared by all runs, or one value per optimizer such as its lr schedule).
inline const std::vector<std::string> kIclSettingKeys = {"task.d", "task.basis", "task.coordinates",
                                                          "train.lr_schedule", "eval.epsilon", "precision"};

struct IclRun {
  std::filesystem::path dir;
  nlohmann::json config;
  std::string optimizer;               // optimizer.type
  nlohmann::json lr;                   // optimizer.lr
  nlohmann::json seed;
  Spectrum sigma_x, sigma_w;
  std::vector<nlohmann::json> settings;  // one per kIclSettingKeys (null if absent)
  std::string status;                  // summary.json's, else "incomplete"
  std::string message;
  bool metrics_truncated = false;
  double epsilon = 0;                  // summary.json's, else config eval.epsilon
  int64_t last_step = 0;               // step of the last eval row (0 without rows)
  std::optional<int64_t> steps_to_epsilon;  // first eval step with relative_distance <= epsilon
  bool reached = false;                // steps_to_epsilon defined and the run did not diverge
  double final_loss = 0;               // last row; NaN without rows
  double final_relative_distance = 0;  // last row; NaN without rows
};
// Reads one icl_linreg run directory, streaming metrics.csv. steps_to_epsilon is recomputed
// from it (a disagreement with summary.json is logged). RuntimeError naming the file for a
// missing or malformed config.json / metrics.csv / summary.json (run_reader.h).
IclRun read_icl_run(const std::filesystem::path& dir);

// One learning rate of a group, over its seeds.
struct IclCandidate {
  nlohmann::json lr;
  std::vector<std::size_t> runs;  // indices into IclReport::runs
  int reached = 0;
  std::optional<double> median_steps;  // over the runs that reached epsilon
  std::optional<int64_t> min_steps, max_steps;
  double median_final_relative_distance = 0;  // over all runs; a NaN (diverged) counts as +inf
};

// Runs with equal optimizer.type, settings and spectra.
struct IclGroup {
  std::string optimizer;
  std::vector<nlohmann::json> settings;  // one per kIclSettingKeys
  Spectrum sigma_x, sigma_w;
  // Best first: lrs some run of which reached epsilon, by median steps (lower first), then
  // more runs reached; then the others by median final relative distance; ties: smaller lr.
  std::vector<IclCandidate> candidates;
  const IclCandidate& best() const { return candidates.front(); }
};

struct IclReport {
  std::vector<IclRun> runs;
  std::vector<IclGroup> groups;       // sorted by optimizer, settings, sigma_x, sigma_w
  std::vector<bool> setting_varies;   // per kIclSettingKeys: runs of one optimizer differ in it
};
IclReport icl_report(std::vector<IclRun> runs);

// "N icl_linreg runs (statuses); task.d = 20; ...; train.lr_schedule: gd {..} specgd {..}".
std::string icl_headline(const IclReport& r);
// The best-lr table (one row per group) and the Fig. 5 pivot (rows optimizer x sigma_x,
// columns sigma_w).
std::vector<Table> icl_tables(const IclReport& r);
std::string render_icl_text(const IclReport& r);
std::string render_icl_markdown(const IclReport& r);  // a "## In-context linear regression" section

std::string icl_runs_csv(const IclReport& r);   // one row per run
std::string icl_table_csv(const IclReport& r);  // one row per (group, lr); `best` marks the chosen lr
nlohmann::json icl_json(const IclReport& r);    // analysis.json's "icl" section

}  // namespace skillrun
