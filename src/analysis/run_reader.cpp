// Run-directory reader. metrics.csv is parsed by hand (it is plain numbers, written by
// io/run_dir.cpp with %.9g, "nan"/"inf" included) so a partial last line can be told apart
// from a corrupt file.
#include "analysis/run_reader.h"

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <functional>
#include <sstream>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "config/experiment.h"
#include "core/error.h"
#include "core/fs.h"

namespace skillrun {
namespace {

namespace fs = std::filesystem;

// The fields of one data line; empty when a field is missing or not a number.
std::optional<MetricsRow> parse_row(const std::vector<std::string>& f, int n_tasks) {
  if (f.size() != static_cast<std::size_t>(4 + 2 * n_tasks)) return std::nullopt;
  MetricsRow row;
  const auto step = parse_int(f[0]);
  const auto wall = parse_double(f[1]);
  const auto mean = parse_double(f[3]);
  if (!step || !wall || !mean) return std::nullopt;
  row.step = *step;
  row.wall_seconds = *wall;
  if (!f[2].empty()) {
    row.train_loss_bits = parse_double(f[2]);
    if (!row.train_loss_bits) return std::nullopt;
  }
  row.mean_loss_bits = *mean;
  for (int k = 0; k < 2 * n_tasks; ++k) {
    const auto v = parse_double(f[4 + k]);
    if (!v) return std::nullopt;
    (k < n_tasks ? row.loss_bits : row.accuracy).push_back(*v);
  }
  return row;
}

// The names io/run_dir.cpp writes; anything else in summary.json is kept but flagged.
bool is_known_status(const std::string& status) {
  for (RunStatus s : {RunStatus::Running, RunStatus::Converged, RunStatus::MaxSteps, RunStatus::Diverged,
                      RunStatus::Interrupted, RunStatus::Failed})
    if (status == to_string(s)) return true;
  return false;
}

}  // namespace

double number_at(const nlohmann::json& config, const std::string& key, const fs::path& file) {
  const nlohmann::json v = value_at(config, key);
  if (!v.is_number()) throw RuntimeError(fmt::format("{}: {} is missing or not a number", file.string(), key));
  return v.get<double>();
}

bool read_csv_rows(const std::string& text, const std::string& source,
                   const std::function<void(const std::vector<std::string>&)>& check_header,
                   const std::function<bool(const std::vector<std::string>&)>& parse_row) {
  if (text.empty()) return false;  // killed before the header
  std::vector<std::string> lines = split(text, '\n');
  const bool partial_last = text.back() != '\n';
  if (!partial_last) lines.pop_back();  // the empty piece after the final newline
  if (lines.size() == 1 && partial_last) return true;  // killed while writing the header
  check_header(split(lines[0], ','));
  for (std::size_t i = 1; i < lines.size(); ++i) {
    const bool last = i + 1 == lines.size();
    if (!(last && partial_last) && parse_row(split(lines[i], ','))) continue;
    if (last) return true;
    throw RuntimeError(fmt::format("{}:{}: malformed row", source, i + 1));
  }
  return false;
}

MetricsTable parse_metrics_csv(const std::string& text, const std::string& source) {
  MetricsTable t;
  const auto check_header = [&](const std::vector<std::string>& header) {
    const bool fixed_ok = header.size() >= 4 && header[0] == "step" && header[1] == "wall_s" &&
                          header[2] == "train_loss" && header[3] == "mean_loss";
    t.n_tasks = static_cast<int>(std::count_if(header.begin(), header.end(),
                                               [](const std::string& h) { return h.starts_with("loss_"); }));
    if (!fixed_ok || header.size() != static_cast<std::size_t>(4 + 2 * t.n_tasks))
      throw RuntimeError(fmt::format(
          "{}:1: not a skillrun metrics header (step,wall_s,train_loss,mean_loss,loss_k..,acc_k..)", source));
  };
  t.truncated = read_csv_rows(text, source, check_header, [&](const std::vector<std::string>& fields) {
    auto row = parse_row(fields, t.n_tasks);
    if (row) t.rows.push_back(std::move(*row));
    return row.has_value();
  });
  return t;
}

nlohmann::json value_at(const nlohmann::json& object, const std::string& dotted_key) {
  const nlohmann::json* node = &object;
  for (const std::string& part : split(dotted_key, '.')) {
    if (!node->is_object() || !node->contains(part)) return nullptr;
    node = &(*node)[part];
  }
  return *node;
}

nlohmann::json read_config_json(const fs::path& dir) {
  const fs::path config_file = dir / "config.json";
  if (!fs::exists(config_file)) throw RuntimeError(fmt::format("{}: missing (every run writes it first)", config_file.string()));
  // Malformed, too deep or with a duplicate key: a damaged run directory (exit 1), not a usage error.
  try {
    return parse_json(read_file(config_file), config_file.string());
  } catch (const ConfigError& e) {
    throw RuntimeError(e.what());
  }
}

std::string task_type(const nlohmann::json& config) {
  const nlohmann::json t = value_at(config, "task.type");
  return t.is_null() ? kTaskSparseParity : t.is_string() ? t.get<std::string>() : t.dump();
}

std::optional<nlohmann::json> read_summary_json(const fs::path& dir, std::string& status, std::string& message) {
  const fs::path summary_file = dir / "summary.json";
  if (!fs::exists(summary_file)) return std::nullopt;
  nlohmann::json s;
  try {
    s = parse_json(read_file(summary_file), summary_file.string());
    status = s.at("status").get<std::string>();
    message = s.value("message", "");
  } catch (const ConfigError& e) {
    throw RuntimeError(e.what());
  } catch (const nlohmann::json::exception& e) {
    throw RuntimeError(fmt::format("{}: {}", summary_file.string(), e.what()));
  }
  if (!is_known_status(status)) spdlog::warn("{}: unknown status \"{}\"", summary_file.string(), status);
  return s;
}

RunRecord read_run(const fs::path& dir) {
  RunRecord r;
  r.dir = dir;
  const fs::path config_file = dir / "config.json";
  r.config = read_config_json(dir);

  const fs::path metrics_file = dir / "metrics.csv";
  r.metrics = parse_metrics_csv(read_file(metrics_file), metrics_file.string());
  const int n_tasks = static_cast<int>(number_at(r.config, "task.n_tasks", config_file));
  if (r.metrics.n_tasks == 0 && r.metrics.rows.empty()) r.metrics.n_tasks = n_tasks;
  if (r.metrics.n_tasks != n_tasks)
    throw RuntimeError(fmt::format("{}: {} loss columns but config.json has task.n_tasks = {}", metrics_file.string(),
                                   r.metrics.n_tasks, n_tasks));
  if (r.metrics.truncated)
    spdlog::warn("{}: partial last line dropped (the run was killed while writing it); read {} whole rows",
                 metrics_file.string(), r.metrics.rows.size());

  number_at(r.config, "task.zipf_exponent", config_file);  // the p_k need it: fail here, naming the file
  r.tau_bits = number_at(r.config, "eval.tau_bits", config_file);
  if (const auto s = read_summary_json(dir, r.status, r.message)) {
    try {
      if (s->contains("tau_bits")) r.tau_bits = s->at("tau_bits").get<double>();
      for (const auto& t : s->value("T_k", nlohmann::json::array()))
        r.summary_T_k.push_back(t.is_null() ? std::nullopt : std::optional<int64_t>(t.get<int64_t>()));
    } catch (const nlohmann::json::exception& e) {
      throw RuntimeError(fmt::format("{}: {}", (dir / "summary.json").string(), e.what()));
    }
    r.has_summary = true;
  }
  return r;
}

std::vector<fs::path> discover_runs(const std::vector<fs::path>& paths) {
  std::vector<fs::path> runs;
  for (const fs::path& root : paths) {
    std::error_code ec;
    if (!fs::exists(root, ec)) throw UsageError(fmt::format("{}: no such file or directory", root.string()));
    if (!fs::is_directory(root, ec)) throw UsageError(fmt::format("{}: not a directory (give a run directory or a directory of runs)", root.string()));
    walk_run_tree(
        root,
        [&](const fs::path& dir) {
          if (fs::exists(dir / "metrics.csv", ec)) runs.push_back(fs::weakly_canonical(dir));
          return true;
        },
        [](const fs::path& dir, const std::string& why) {
          spdlog::warn("{}: cannot be listed ({}); skipped", dir.string(), why);
        });
  }
  std::sort(runs.begin(), runs.end());
  runs.erase(std::unique(runs.begin(), runs.end()), runs.end());
  return runs;
}

}  // namespace skillrun
