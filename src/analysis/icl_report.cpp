// icl_linreg runs: reading them back, grouping by (optimizer, settings, sigma_x, sigma_w),
// the best lr per group by median iterations to epsilon, and the tables and files of the
// report. Runs are referred to by index into IclReport::runs.
#include "analysis/icl_report.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <functional>
#include <limits>
#include <map>
#include <set>
#include <tuple>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "analysis/report.h"
#include "analysis/run_analysis.h"
#include "analysis/run_reader.h"
#include "core/error.h"
#include "core/fs.h"

namespace skillrun {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// NaN (a diverged run) sorts as +inf.
double nan_as_worst(double v) { return std::isnan(v) ? std::numeric_limits<double>::infinity() : v; }

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

IclCandidate summarize_candidate(const std::vector<IclRun>& runs, json lr, std::vector<std::size_t> indices) {
  IclCandidate c;
  c.lr = std::move(lr);
  c.runs = std::move(indices);
  std::vector<double> steps, distances;
  for (std::size_t i : c.runs) {
    const IclRun& run = runs[i];
    distances.push_back(nan_as_worst(run.final_relative_distance));
    if (!run.reached) continue;
    ++c.reached;
    steps.push_back(static_cast<double>(*run.steps_to_epsilon));
    c.min_steps = std::min(c.min_steps.value_or(*run.steps_to_epsilon), *run.steps_to_epsilon);
    c.max_steps = std::max(c.max_steps.value_or(*run.steps_to_epsilon), *run.steps_to_epsilon);
  }
  if (!steps.empty()) c.median_steps = median(steps);
  c.median_final_relative_distance = distances.empty() ? std::nan("") : median(distances);
  return c;
}

// Best first (see IclGroup::candidates).
bool better(const IclCandidate& a, const IclCandidate& b) {
  const auto rank = [](const IclCandidate& c) {
    return std::make_tuple(c.reached == 0, c.median_steps.value_or(std::numeric_limits<double>::infinity()), -c.reached,
                           c.median_final_relative_distance);
  };
  return rank(a) != rank(b) ? rank(a) < rank(b) : a.lr < b.lr;
}

// "120", "120 (2/3)" when only some seeds reached epsilon, "—" when none did.
std::string format_steps(const IclCandidate& c) {
  if (!c.median_steps) return "—";
  const std::string m = fmt::format("{}", *c.median_steps);
  const int n = static_cast<int>(c.runs.size());
  return c.reached == n ? m : fmt::format("{} ({}/{})", m, c.reached, n);
}

std::string format_distance(double v) { return std::isinf(v) ? "diverged" : fmt::format("{:.3g}", v); }

std::vector<std::size_t> varying_settings(const IclReport& r) {
  std::vector<std::size_t> out;
  for (std::size_t k = 0; k < r.setting_varies.size(); ++k)
    if (r.setting_varies[k]) out.push_back(k);
  return out;
}

// The row key columns of both tables: optimizer, the settings the runs differ in, sigma_x.
std::vector<std::string> key_header(const IclReport& r) {
  std::vector<std::string> h{"optimizer"};
  for (std::size_t k : varying_settings(r)) h.push_back(kIclSettingKeys[k]);
  h.emplace_back("sigma_x");
  return h;
}
std::vector<std::string> key_cells(const IclReport& r, const IclGroup& g) {
  std::vector<std::string> c{g.optimizer};
  for (std::size_t k : varying_settings(r)) c.push_back(display_value(g.settings[k]));
  c.push_back(g.sigma_x.label());
  return c;
}

Table best_lr_table(const IclReport& r) {
  Table t;
  t.title = "icl_linreg: steps to relative distance <= epsilon at the best lr (median over seeds)";
  t.header = key_header(r);
  for (const char* h : {"sigma_w", "lr", "reached", "steps to epsilon", "final rel. distance", "other lrs (ranked)"})
    t.header.emplace_back(h);
  for (const IclGroup& g : r.groups) {
    std::vector<std::string> row = key_cells(r, g);
    const IclCandidate& best = g.best();
    std::string others;
    for (std::size_t i = 1; i < g.candidates.size(); ++i) {
      const IclCandidate& c = g.candidates[i];
      others += fmt::format("{}lr {}: {} ({}/{})", others.empty() ? "" : "; ", display_value(c.lr),
                            c.median_steps ? fmt::format("{}", *c.median_steps) : "—", c.reached, c.runs.size());
    }
    for (const std::string& c : {g.sigma_w.label(), display_value(best.lr), fmt::format("{}/{}", best.reached, best.runs.size()),
                                 format_steps(best), format_distance(best.median_final_relative_distance),
                                 others.empty() ? std::string("—") : others})
      row.push_back(c);
    t.rows.push_back(std::move(row));
  }
  t.note = "steps to epsilon: first eval step with relative_distance <= epsilon (resolution eval.every), median over the "
           "seeds that reached it; reached: seeds that did (a diverged run never counts). Best lr: lowest median, then "
           "more seeds reached. final rel. distance: median over all seeds, last eval.";
  return t;
}

// Fig. 5 as a grid: rows optimizer x sigma_x, one column per sigma_w.
Table pivot_table(const IclReport& r) {
  Table t;
  t.title = "Fig. 5 grid: steps to epsilon at the best lr (rows optimizer x sigma_x, columns sigma_w)";
  t.header = key_header(r);
  std::set<Spectrum> columns;
  for (const IclGroup& g : r.groups) columns.insert(g.sigma_w);
  for (const Spectrum& s : columns) t.header.push_back("sigma_w " + s.label());
  for (std::size_t i = 0; i < r.groups.size();) {
    std::vector<std::string> row = key_cells(r, r.groups[i]);
    const std::size_t first_cell = row.size();
    row.resize(first_cell + columns.size());
    // Groups are sorted with sigma_w last: the groups of one row are consecutive.
    for (; i < r.groups.size() && key_cells(r, r.groups[i]) == std::vector<std::string>(row.begin(), row.begin() + first_cell); ++i)
      row[first_cell + static_cast<std::size_t>(std::distance(columns.begin(), columns.find(r.groups[i].sigma_w)))] =
          format_steps(r.groups[i].best());
    t.rows.push_back(std::move(row));
  }
  t.note = "Median over seeds at each cell's best lr (see the table above); (r/n): only r of n seeds reached epsilon; "
           "—: none did.";
  return t;
}

// kappa and exponent columns of a spectrum: one of them empty.
std::vector<std::string> spectrum_cells(const Spectrum& s) {
  return {s.kind == "kappa" ? csv_cell(s.value) : "", s.kind == "exponent" ? csv_cell(s.value) : ""};
}

json spectrum_json(const Spectrum& s) { return {{s.kind, s.value}}; }

json settings_json(const std::vector<json>& settings) {
  json j = json::object();
  for (std::size_t k = 0; k < settings.size(); ++k) j[kIclSettingKeys[k]] = settings[k];
  return j;
}

}  // namespace

std::string Spectrum::label() const { return fmt::format("{}={:g}", kind, value); }

Spectrum spectrum_at(const json& config, const std::string& key, const fs::path& config_file) {
  const json v = value_at(config, key);
  if (v.is_object() && v.size() == 1) {
    const auto& [kind, value] = *v.items().begin();
    if ((kind == "kappa" || kind == "exponent") && value.is_number()) return {kind, value.get<double>()};
  }
  throw RuntimeError(fmt::format("{}: {} must hold exactly one of {{\"kappa\": K}} or {{\"exponent\": E}}, got {}",
                                 config_file.string(), key, v.dump()));
}

bool read_icl_metrics_csv(std::istream& in, const std::string& source,
                          const std::function<void(const IclRow&)>& on_row) {
  std::vector<std::string> header;
  std::size_t loss = 0, distance = 0;
  std::vector<double> values;  // of one row, reused
  const auto check_header = [&](const std::vector<std::string>& h) {
    const auto column = [&](const char* name) {
      return static_cast<std::size_t>(std::find(h.begin(), h.end(), name) - h.begin());
    };
    loss = column("loss");
    distance = column("relative_distance");
    if (h.size() < 2 || h[0] != "step" || h[1] != "wall_s" || loss == h.size() || distance == h.size())
      throw RuntimeError(fmt::format(
          "{}:1: not an icl_linreg metrics header (step,wall_s,...,loss,...,relative_distance,...)", source));
    header = h;
  };
  return read_csv_rows(in, source, check_header, [&](const std::vector<std::string>& fields, int64_t step) {
    RowVerdict v;
    values.resize(fields.size());
    for (std::size_t i = 1; i < fields.size(); ++i)
      if (!number_field(fields, header, i, values[i], v.malformed)) return v;
    const IclRow row{step, values[loss], values[distance]};
    // The values a run stops at when non-finite (train/icl_trainer): only its last row has one.
    if (!std::isfinite(row.loss))
      v.nonfinite = header[loss];
    else if (!std::isfinite(row.relative_distance))
      v.nonfinite = header[distance];
    on_row(row);
    return v;
  });
}

IclRun read_icl_run(const fs::path& dir) {
  IclRun r;
  r.dir = dir;
  const fs::path config_file = dir / "config.json";
  const RunConfig config = read_run_config(dir);
  if (!config.config.is_icl())
    throw RuntimeError(fmt::format("{}: a sparse_parity run, not icl_linreg", config_file.string()));
  r.config = config.json;
  r.optimizer = std::string(name(config.config.optimizer.type));
  r.lr = value_at(r.config, "optimizer.lr");
  r.seed = value_at(r.config, "seed");
  r.sigma_x = spectrum_at(r.config, "task.sigma_x", config_file);
  r.sigma_w = spectrum_at(r.config, "task.sigma_w", config_file);
  for (const std::string& key : kIclSettingKeys) r.settings.push_back(value_at(r.config, key));

  r.status = kStatusIncomplete;
  const fs::path summary_file = dir / "summary.json";
  const auto summary = read_summary_json(dir, r.status, r.message);
  json recorded = nullptr;  // summary.json's steps_to_epsilon
  r.epsilon = config.config.eval.epsilon;
  if (summary) {
    if (const auto epsilon = positive_summary_number(*summary, "epsilon", dir)) r.epsilon = *epsilon;
    recorded = summary->value("steps_to_epsilon", json(nullptr));
    if (!recorded.is_null() && !recorded.is_number_integer())
      throw RuntimeError(fmt::format("{}: steps_to_epsilon must be an integer or null, got {}", summary_file.string(),
                                     recorded.dump(-1, ' ', false, json::error_handler_t::replace)));
  }

  // Streamed: only the first step at or below epsilon and the last row are kept.
  const fs::path metrics_file = dir / "metrics.csv";
  std::ifstream in = open_metrics_csv(dir);
  std::optional<IclRow> last;
  std::size_t rows = 0;
  r.metrics_truncated = read_icl_metrics_csv(in, metrics_file.string(), [&](const IclRow& row) {
    // NaN and ±inf never reach epsilon (−inf <= epsilon would)
    if (!r.steps_to_epsilon && std::isfinite(row.relative_distance) && row.relative_distance <= r.epsilon)
      r.steps_to_epsilon = row.step;
    last = row;
    ++rows;
  });
  if (r.metrics_truncated)
    spdlog::warn("{}: partial last line dropped (the run was killed while writing it); read {} whole rows",
                 metrics_file.string(), rows);

  r.last_step = last ? last->step : 0;
  r.final_loss = last ? last->loss : std::nan("");
  r.final_relative_distance = last ? last->relative_distance : std::nan("");
  r.reached = r.steps_to_epsilon.has_value() && r.status != "diverged";
  const std::optional<int64_t> recorded_steps = recorded.is_null() ? std::nullopt : std::optional(recorded.get<int64_t>());
  if (summary && r.status != "running" && !r.metrics_truncated && recorded_steps != r.steps_to_epsilon)
    spdlog::warn("{}: steps_to_epsilon from metrics.csv ({}) differs from summary.json's ({}); using metrics.csv",
                 dir.string(), r.steps_to_epsilon ? std::to_string(*r.steps_to_epsilon) : "none", recorded.dump());
  return r;
}

IclReport icl_report(std::vector<IclRun> runs) {
  IclReport r;
  r.runs = std::move(runs);
  r.setting_varies.assign(kIclSettingKeys.size(), false);
  std::map<std::string, std::size_t> first_of;  // optimizer -> its first run
  for (std::size_t i = 0; i < r.runs.size(); ++i) {
    const IclRun& first = r.runs[first_of.try_emplace(r.runs[i].optimizer, i).first->second];
    for (std::size_t k = 0; k < kIclSettingKeys.size(); ++k)
      r.setting_varies[k] = r.setting_varies[k] || r.runs[i].settings[k] != first.settings[k];
  }

  using Key = std::tuple<std::string, std::vector<json>, Spectrum, Spectrum>;
  std::map<Key, std::map<json, std::vector<std::size_t>>> by_key;  // -> lr -> runs
  for (std::size_t i = 0; i < r.runs.size(); ++i) {
    const IclRun& run = r.runs[i];
    by_key[{run.optimizer, run.settings, run.sigma_x, run.sigma_w}][run.lr].push_back(i);
  }
  for (auto& [key, by_lr] : by_key) {
    IclGroup g;
    std::tie(g.optimizer, g.settings, g.sigma_x, g.sigma_w) = key;
    for (auto& [lr, indices] : by_lr) g.candidates.push_back(summarize_candidate(r.runs, lr, std::move(indices)));
    std::sort(g.candidates.begin(), g.candidates.end(), better);
    r.groups.push_back(std::move(g));
  }
  return r;
}

std::string icl_headline(const IclReport& r) {
  std::map<std::string, int> statuses;
  for (const IclRun& run : r.runs) ++statuses[run.status];
  std::string out = fmt::format("{} icl_linreg run{} ({})", r.runs.size(), r.runs.size() == 1 ? "" : "s",
                                format_status(statuses));
  // Settings that are columns vary within an optimizer; the others are the same for all runs,
  // or for all runs of each optimizer (e.g. its lr schedule).
  for (std::size_t k = 0; k < kIclSettingKeys.size(); ++k) {
    if (r.setting_varies[k]) continue;
    std::map<std::string, std::string> by_optimizer;
    for (const IclRun& run : r.runs) by_optimizer[run.optimizer] = display_value(run.settings[k]);
    std::set<std::string> values;
    for (const auto& [optimizer, value] : by_optimizer) values.insert(value);
    if (values.size() == 1) {
      if (!r.runs.front().settings[k].is_null()) out += fmt::format("; {} = {}", kIclSettingKeys[k], *values.begin());
      continue;
    }
    out += fmt::format("; {}:", kIclSettingKeys[k]);
    for (const auto& [optimizer, value] : by_optimizer) out += fmt::format(" {} {}", optimizer, value);
  }
  return out;
}

std::vector<Table> icl_tables(const IclReport& r) { return {best_lr_table(r), pivot_table(r)}; }

std::string render_icl_text(const IclReport& r) {
  std::string out = icl_headline(r) + "\n";
  for (const Table& t : icl_tables(r)) out.append("\n").append(render_text(t));
  return out;
}

std::string render_icl_markdown(const IclReport& r) {
  std::string out = "## In-context linear regression (icl_linreg)\n\n" + icl_headline(r) + "\n";
  for (const Table& t : icl_tables(r)) out.append("\n").append(render_markdown(t));
  return out;
}

std::string icl_runs_csv(const IclReport& r) {
  std::vector<std::string> header{"dir", "optimizer", "lr", "kappa_x", "exponent_x", "kappa_w", "exponent_w"};
  header.insert(header.end(), kIclSettingKeys.begin(), kIclSettingKeys.end());
  for (const char* h : {"seed", "status", "metrics_truncated", "steps", "epsilon", "steps_to_epsilon", "reached",
                        "final_relative_distance", "final_loss"})
    header.emplace_back(h);
  std::string out = csv_line(header);
  for (const IclRun& run : r.runs) {
    std::vector<std::string> row{run.dir.string(), run.optimizer, csv_cell(run.lr)};
    for (const Spectrum* s : {&run.sigma_x, &run.sigma_w})
      for (std::string& c : spectrum_cells(*s)) row.push_back(std::move(c));
    for (const json& v : run.settings) row.push_back(csv_cell(v));
    for (const std::string& c : {csv_cell(run.seed), run.status, std::string(run.metrics_truncated ? "true" : "false"),
                                 std::to_string(run.last_step), csv_cell(run.epsilon), csv_cell(run.steps_to_epsilon),
                                 std::string(run.reached ? "true" : "false"), csv_cell(run.final_relative_distance),
                                 csv_cell(run.final_loss)})
      row.push_back(c);
    out += csv_line(row);
  }
  return out;
}

std::string icl_table_csv(const IclReport& r) {
  std::vector<std::string> header{"optimizer", "kappa_x", "exponent_x", "kappa_w", "exponent_w"};
  header.insert(header.end(), kIclSettingKeys.begin(), kIclSettingKeys.end());
  for (const char* h : {"lr", "best", "runs", "reached", "median_steps_to_epsilon", "min_steps_to_epsilon",
                        "max_steps_to_epsilon", "median_final_relative_distance"})
    header.emplace_back(h);
  std::string out = csv_line(header);
  for (const IclGroup& g : r.groups)
    for (const IclCandidate& c : g.candidates) {
      std::vector<std::string> row{g.optimizer};
      for (const Spectrum* s : {&g.sigma_x, &g.sigma_w})
        for (std::string& cell : spectrum_cells(*s)) row.push_back(std::move(cell));
      for (const json& v : g.settings) row.push_back(csv_cell(v));
      const double distance = c.median_final_relative_distance;
      for (const std::string& cell :
           {csv_cell(c.lr), std::string(&c == &g.best() ? "true" : "false"), std::to_string(c.runs.size()),
            std::to_string(c.reached), csv_cell(c.median_steps), csv_cell(c.min_steps), csv_cell(c.max_steps),
            std::isinf(distance) ? std::string() : csv_cell(distance)})
        row.push_back(cell);
      out += csv_line(row);
    }
  return out;
}

json icl_json(const IclReport& r) {
  json runs = json::array();
  for (const IclRun& run : r.runs)
    runs.push_back({{"dir", run.dir.string()},
                    {"optimizer", run.optimizer},
                    {"lr", run.lr},
                    {"seed", run.seed},
                    {"sigma_x", spectrum_json(run.sigma_x)},
                    {"sigma_w", spectrum_json(run.sigma_w)},
                    {"sigma_x_label", run.sigma_x.label()},
                    {"sigma_w_label", run.sigma_w.label()},
                    {"settings", settings_json(run.settings)},
                    {"config", run.config},
                    {"status", run.status},
                    {"message", run.message},
                    {"metrics_truncated", run.metrics_truncated},
                    {"epsilon", run.epsilon},
                    {"steps", run.last_step},
                    {"steps_to_epsilon", run.steps_to_epsilon ? json(*run.steps_to_epsilon) : json(nullptr)},
                    {"reached", run.reached},
                    {"final_loss", run.final_loss},  // NaN is written as null
                    {"final_relative_distance", run.final_relative_distance}});
  json groups = json::array();
  for (const IclGroup& g : r.groups) {
    json candidates = json::array();
    for (const IclCandidate& c : g.candidates)
      candidates.push_back({{"lr", c.lr},
                            {"runs", c.runs},
                            {"reached", c.reached},
                            {"median_steps", c.median_steps ? json(*c.median_steps) : json(nullptr)},
                            {"min_steps", c.min_steps ? json(*c.min_steps) : json(nullptr)},
                            {"max_steps", c.max_steps ? json(*c.max_steps) : json(nullptr)},
                            {"median_final_relative_distance", c.median_final_relative_distance}});
    groups.push_back({{"optimizer", g.optimizer},
                      {"settings", settings_json(g.settings)},
                      {"sigma_x", spectrum_json(g.sigma_x)},
                      {"sigma_w", spectrum_json(g.sigma_w)},
                      {"sigma_x_label", g.sigma_x.label()},
                      {"sigma_w_label", g.sigma_w.label()},
                      {"lr", g.best().lr},
                      {"candidates", candidates}});
  }
  json varying = json::array();
  for (std::size_t k : varying_settings(r)) varying.push_back(kIclSettingKeys[k]);
  return {{"setting_keys", kIclSettingKeys}, {"varying", varying}, {"runs", runs}, {"groups", groups}};
}

}  // namespace skillrun
