// Run-directory reader. metrics.csv is parsed by hand (it is plain numbers, written by
// io/run_dir.cpp with %.9g, "nan"/"inf" included) so a partial last line can be told apart
// from a corrupt file, and a line at a time so that a file of any size costs only what is kept.
#include "analysis/run_reader.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <functional>
#include <sstream>
#include <system_error>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "core/error.h"
#include "core/fs.h"
#include "analysis/fits.h"
#include "tasks/task.h"

namespace skillrun {
namespace {

namespace fs = std::filesystem;

// A field as a message shows it: quoted, control bytes escaped, at most 40 bytes of it.
std::string shown(const std::string& field) {
  const std::string head = field.size() > 40 ? field.substr(0, 40) + "..." : field;
  return nlohmann::json(head).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

// `fields` = the comma-separated pieces of `line`, reusing the strings' storage between lines.
void split_into(const std::string& line, std::vector<std::string>& fields) {
  std::size_t n = 0, start = 0;
  while (true) {
    const std::size_t end = line.find(',', start);
    if (n == fields.size()) fields.emplace_back();
    fields[n++].assign(line, start, end == std::string::npos ? std::string::npos : end - start);
    if (end == std::string::npos) break;
    start = end + 1;
  }
  fields.resize(n);
}

// The fields of one data line (of `header`, n_tasks loss and accuracy columns) into `row`.
RowVerdict parse_metrics_row(const std::vector<std::string>& f, const std::vector<std::string>& header, int n_tasks,
                             int64_t step, MetricsRow& row) {
  RowVerdict v;
  row.step = step;
  row.loss_bits.resize(static_cast<std::size_t>(n_tasks));
  row.accuracy.resize(static_cast<std::size_t>(n_tasks));
  double train = 0;
  if (!number_field(f, header, 1, row.wall_seconds, v.malformed) ||
      (!f[2].empty() && !number_field(f, header, 2, train, v.malformed)) ||
      !number_field(f, header, 3, row.mean_loss_bits, v.malformed))
    return v;
  row.train_loss_bits = f[2].empty() ? std::nullopt : std::optional<double>(train);
  for (int k = 0; k < 2 * n_tasks; ++k)
    if (!number_field(f, header, static_cast<std::size_t>(4 + k),
                      k < n_tasks ? row.loss_bits[k] : row.accuracy[k - n_tasks], v.malformed))
      return v;
  // The losses a run stops at when non-finite (train/trainer.cpp): only its last row has one.
  if (row.train_loss_bits && !std::isfinite(*row.train_loss_bits))
    v.nonfinite = header[2];
  else if (!std::isfinite(row.mean_loss_bits))
    v.nonfinite = header[3];
  for (int k = 0; k < n_tasks && v.nonfinite.empty(); ++k)
    if (!std::isfinite(row.loss_bits[k])) v.nonfinite = header[4 + k];
  return v;
}

// The names io/run_dir.cpp writes; anything else in summary.json is kept but flagged.
bool is_known_status(const std::string& status) {
  for (RunStatus s : {RunStatus::Running, RunStatus::Converged, RunStatus::MaxSteps, RunStatus::Diverged,
                      RunStatus::Interrupted, RunStatus::Failed})
    if (status == to_string(s)) return true;
  return false;
}

// Adds dir to `runs` when it holds a metrics.csv; false, after a warning naming it and why, when
// that cannot be told (the directory cannot be read).
bool probe_run(const fs::path& dir, std::vector<fs::path>& runs) {
  std::error_code ec;
  if (fs::exists(dir / "metrics.csv", ec)) {
    fs::path canonical = fs::weakly_canonical(dir, ec);
    if (!ec) runs.push_back(std::move(canonical));
  }
  if (ec) spdlog::warn("{}: cannot be read ({}); skipped, with any runs below it", dir.string(), ec.message());
  return !ec;
}

}  // namespace

bool number_field(const std::vector<std::string>& fields, const std::vector<std::string>& header, std::size_t i,
                  double& out, std::string& why) {
  const auto v = parse_double(fields[i]);
  if (!v) {
    why = fmt::format("{}: {} is not a number", header[i], shown(fields[i]));
    return false;
  }
  out = *v;
  return true;
}

bool read_csv_rows(std::istream& in, const std::string& source,
                   const std::function<void(const std::vector<std::string>&)>& check_header,
                   const std::function<RowVerdict(const std::vector<std::string>&, int64_t)>& parse_row) {
  const auto read_error = [&] { return RuntimeError(fmt::format("{}: cannot be read (I/O error)", source)); };
  std::string line;
  if (!std::getline(in, line)) {
    if (in.bad()) throw read_error();
    return false;  // empty: killed before the header
  }
  if (in.eof()) return true;  // killed while writing the header
  const std::vector<std::string> header = split(line, ',');
  check_header(header);
  std::vector<std::string> fields;
  std::optional<int64_t> previous_step;
  int previous_line = 0;
  std::string nonfinite;  // a column of the previous row that only the last row may hold non-finite
  for (int n = 2; std::getline(in, line); ++n) {
    if (in.eof()) return true;  // no newline: the run was killed while writing it
    const bool last = in.peek() == std::char_traits<char>::eof();
    split_into(line, fields);
    const auto step = parse_int(fields[0]);
    RowVerdict v;
    if (fields.size() != header.size())
      v.malformed = fmt::format("{} fields where the header has {}", fields.size(), header.size());
    else if (!step)
      v.malformed = fmt::format("step: {} is not an integer", shown(fields[0]));
    else
      v = parse_row(fields, *step);
    if (!v.malformed.empty()) {
      if (last) return true;
      throw RuntimeError(fmt::format("{}:{}: malformed row ({})", source, n, v.malformed));
    }
    if (*step < 0) throw RuntimeError(fmt::format("{}:{}: step {} is negative", source, n, *step));
    if (previous_step && *step <= *previous_step)
      throw RuntimeError(fmt::format("{}:{}: step {} does not follow step {} of line {} (steps must increase)", source,
                                     n, *step, *previous_step, previous_line));
    if (!nonfinite.empty())
      throw RuntimeError(
          fmt::format("{}:{}: {} is not finite, yet a row follows (a run stops at its first "
                      "non-finite eval, so only its last row may have one)",
                      source, previous_line, nonfinite));
    nonfinite = std::move(v.nonfinite);
    previous_step = step;
    previous_line = n;
  }
  if (in.bad()) throw read_error();
  return false;
}

MetricsShape read_metrics_csv(std::istream& in, const std::string& source,
                              const std::function<void(const MetricsRow&)>& on_row, std::optional<int> n_tasks) {
  MetricsShape shape;
  std::vector<std::string> header;
  const auto check_header = [&](const std::vector<std::string>& h) {
    const bool fixed_ok =
        h.size() >= 4 && h[0] == "step" && h[1] == "wall_s" && h[2] == "train_loss" && h[3] == "mean_loss";
    const auto n = static_cast<std::size_t>(
        std::count_if(h.begin(), h.end(), [](const std::string& c) { return c.starts_with("loss_"); }));
    if (!fixed_ok || h.size() != 4 + 2 * n)
      throw RuntimeError(fmt::format(
          "{}:1: not a skillrun metrics header (step,wall_s,train_loss,mean_loss,loss_k..,acc_k..)", source));
    if (n_tasks && n != static_cast<std::size_t>(*n_tasks))
      throw RuntimeError(
          fmt::format("{}:1: {} loss columns but config.json has task.n_tasks = {}", source, n, *n_tasks));
    shape.n_tasks = static_cast<int>(n);
    header = h;
  };
  MetricsRow row;
  shape.truncated = read_csv_rows(in, source, check_header, [&](const std::vector<std::string>& fields, int64_t step) {
    RowVerdict v = parse_metrics_row(fields, header, shape.n_tasks, step, row);
    if (v.malformed.empty()) on_row(row);
    return v;
  });
  return shape;
}

MetricsTable parse_metrics_csv(const std::string& text, const std::string& source) {
  std::istringstream in(text);
  MetricsTable t;
  const MetricsShape shape = read_metrics_csv(in, source, [&](const MetricsRow& row) { t.rows.push_back(row); });
  t.n_tasks = shape.n_tasks;
  t.truncated = shape.truncated;
  return t;
}

void MetricsCurves::add(const MetricsRow& row) {
  acquisition.add(row.step, row.loss_bits);
  steps.push_back(row.step);
  mean_loss_bits.push_back(row.mean_loss_bits);
}

nlohmann::json value_at(const nlohmann::json& object, const std::string& dotted_key) {
  const nlohmann::json* node = &object;
  for (const std::string& part : split(dotted_key, '.')) {
    if (!node->is_object() || !node->contains(part)) return nullptr;
    node = &(*node)[part];
  }
  return *node;
}

RunConfig read_run_config(const fs::path& dir) {
  const fs::path config_file = dir / "config.json";
  std::error_code ec;
  if (!fs::exists(config_file, ec))
    throw RuntimeError(fmt::format("{}: {}", config_file.string(),
                                   ec ? ec.message() : std::string("missing (every run writes it first)")));
  // Malformed, too deep, with a duplicate key, or with a value no run could have had (the
  // config loader's rules, as for `skillrun run`): a damaged run directory (exit 1).
  RunConfig c;
  try {
    c.json = parse_json(read_file(config_file), config_file.string());
    c.config = parse_experiment(c.json);
  } catch (const ConfigError& e) {
    const std::string what = e.what();
    throw RuntimeError(what.starts_with(config_file.string()) ? what
                                                              : fmt::format("{}: {}", config_file.string(), what));
  }
  return c;
}

std::optional<nlohmann::json> read_summary_json(const fs::path& dir, std::string& status, std::string& message) {
  const fs::path summary_file = dir / "summary.json";
  std::error_code ec;
  if (!fs::exists(summary_file, ec)) {
    if (ec) throw RuntimeError(fmt::format("{}: {}", summary_file.string(), ec.message()));
    return std::nullopt;
  }
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

std::optional<double> positive_summary_number(const nlohmann::json& summary, const std::string& key,
                                              const fs::path& dir) {
  if (!summary.contains(key)) return std::nullopt;
  const nlohmann::json& v = summary.at(key);
  if (!v.is_number() || !std::isfinite(v.get<double>()) || !(v.get<double>() > 0))
    throw RuntimeError(fmt::format("{}: {} must be a finite number > 0, got {}", (dir / "summary.json").string(), key,
                                   v.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)));
  return v.get<double>();
}

std::ifstream open_metrics_csv(const fs::path& dir) {
  const fs::path file = dir / "metrics.csv";
  std::error_code ec;
  if (!fs::is_regular_file(file, ec))
    throw RuntimeError(fmt::format("{}: {}", file.string(), ec ? ec.message() : std::string("not a regular file")));
  std::ifstream in(file, std::ios::binary);
  if (!in) throw RuntimeError(fmt::format("{}: cannot be opened for reading", file.string()));
  return in;
}

RunRecord read_run(const fs::path& dir, std::optional<double> tau_bits) {
  RunRecord r;
  r.dir = dir;
  const fs::path config_file = dir / "config.json";
  const RunConfig config = read_run_config(dir);
  if (config.config.is_icl())
    throw RuntimeError(fmt::format("{}: an icl_linreg run, not sparse_parity", config_file.string()));
  r.config = config.json;
  r.zipf_exponent = config.config.task.zipf_exponent;
  const int n_tasks = config.config.task.streams();
  if (config.config.task.type == TaskType::AssocMemory) {
    r.stream_p = stream_frequencies(config.config.task);
    r.assoc_predicted_alpha_s = predicted_assoc_loss_exponent(config.config.task.zipf_exponent,
                                                              config.config.task.label_noise, config.config.optimizer);
  }

  r.tau_bits = config.config.eval.tau_bits;
  if (const auto s = read_summary_json(dir, r.status, r.message)) {
    try {
      if (const auto tau = positive_summary_number(*s, "tau_bits", dir)) r.tau_bits = *tau;
      for (const auto& t : s->value("T_k", nlohmann::json::array()))
        r.summary_T_k.push_back(t.is_null() ? std::nullopt : std::optional<int64_t>(t.get<int64_t>()));
      for (const char* key : {"device", "git_commit", "precision"})
        if (s->contains(key)) r.provenance[key] = (*s)[key].is_string() ? (*s)[key].get<std::string>() : (*s)[key].dump();
    } catch (const nlohmann::json::exception& e) {
      throw RuntimeError(fmt::format("{}: {}", (dir / "summary.json").string(), e.what()));
    }
    r.has_summary = true;
  }

  const fs::path metrics_file = dir / "metrics.csv";
  std::ifstream in = open_metrics_csv(dir);
  r.metrics = MetricsCurves(n_tasks, tau_bits.value_or(r.tau_bits));
  const MetricsShape shape = read_metrics_csv(
      in, metrics_file.string(), [&](const MetricsRow& row) { r.metrics.add(row); }, n_tasks);
  r.metrics.truncated = shape.truncated;
  if (shape.truncated)
    spdlog::warn("{}: partial last line dropped (the run was killed while writing it); read {} whole rows",
                 metrics_file.string(), r.metrics.steps.size());
  return r;
}

std::vector<fs::path> discover_runs(const std::vector<fs::path>& paths) {
  std::vector<fs::path> runs;
  for (const fs::path& root : paths) {
    std::error_code ec;
    if (!fs::exists(root, ec)) throw UsageError(fmt::format("{}: no such file or directory", root.string()));
    if (!fs::is_directory(root, ec)) throw UsageError(fmt::format("{}: not a directory (give a run directory or a directory of runs)", root.string()));
    walk_run_tree(
        root, [&](const fs::path& dir) { return probe_run(dir, runs); },
        [](const fs::path& dir, const std::string& why) {
          spdlog::warn("{}: cannot be listed ({}); skipped the runs below it, if any", dir.string(), why);
        });
  }
  std::sort(runs.begin(), runs.end());
  runs.erase(std::unique(runs.begin(), runs.end()), runs.end());
  return runs;
}

}  // namespace skillrun
