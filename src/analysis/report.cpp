// CSV and JSON writers. Numbers are written with {:.9g} (steps as integers) so a reader gets
// what the analysis computed; a cell is quoted only when it holds a comma, quote or newline.
#include "analysis/report.h"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

#include "analysis/summary_tables.h"
#include "core/error.h"
#include "core/fs.h"

namespace skillrun {

using nlohmann::json;

std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\n") == std::string::npos) return s;
  std::string q = "\"";
  for (char c : s) q += c == '"' ? std::string("\"\"") : std::string(1, c);
  return q + "\"";
}

std::string csv_line(const std::vector<std::string>& cells) {
  std::string out;
  for (std::size_t i = 0; i < cells.size(); ++i) out.append(i ? "," : "").append(csv_field(cells[i]));
  return out + "\n";
}

std::string csv_cell(double v) { return std::isnan(v) ? "" : fmt::format("{:.9g}", v); }
std::string csv_cell(const std::optional<double>& v) { return v ? csv_cell(*v) : ""; }
std::string csv_cell(const std::optional<int64_t>& v) { return v ? std::to_string(*v) : ""; }
std::string csv_cell(const json& v) { return v.is_null() ? "" : v.is_string() ? v.get<std::string>() : v.dump(); }

namespace {

json to_json(double v) { return std::isfinite(v) ? json(v) : json(nullptr); }
template <class T>
json to_json(const std::optional<T>& v) {
  return v ? to_json(static_cast<double>(*v)) : json(nullptr);
}
json to_json(const std::optional<int64_t>& v) { return v ? json(*v) : json(nullptr); }

json to_json(const Stat& s) {
  return {{"mean", to_json(s.mean)}, {"std", to_json(s.std)}, {"defined", s.defined}, {"runs", s.total}};
}

template <class T>
json array_of(const std::vector<T>& values) {
  json a = json::array();
  for (const auto& v : values) a.push_back(to_json(v));
  return a;
}

json to_json(const RunSet& s) {
  json j = {{"runs", s.runs},
            {"status", s.status_counts},
            {"p_k", s.p_k},
            {"T_k", array_of(s.T_k)},
            {"T_first", to_json(s.T_first)},
            {"coverage", array_of(s.coverage)},
            {"sal", array_of(s.sal)},
            {"fraction_learned", to_json(s.fraction_learned)},
            {"final_mean_loss", to_json(s.final_mean_loss)},
            {"frequency_slope", to_json(s.frequency_slope)},
            {"alpha_s", to_json(s.alpha_s)},
            {"predicted_alpha_s", to_json(s.predicted_alpha_s)},
            {"atsr", to_json(s.atsr)}};
  if (!s.spectra_stable_rank.empty()) {
    j["spectra_stable_rank"] = array_of(s.spectra_stable_rank);
    j["spectra_effective_rank"] = array_of(s.spectra_effective_rank);
  }
  return j;
}

// The ranks at the learning times: [{tensor, of, moment, step, stable_rank, effective_rank}].
json spectra_json(const std::vector<SpectraAt>& entries) {
  json out = json::array();
  for (const SpectraAt& e : entries)
    out.push_back({{"tensor", e.tensor}, {"of", e.of}, {"moment", e.moment}, {"step", to_json(e.step)},
                   {"stable_rank", to_json(e.stable_rank)}, {"effective_rank", to_json(e.effective_rank)}});
  return out;
}

json run_json(const RunAnalysis& a, const std::vector<std::string>& keys) {
  json group = json::object();
  for (std::size_t i = 0; i < keys.size(); ++i) group[keys[i]] = a.group_values[i];
  json fit_a = nullptr, fit_b = nullptr;
  if (a.frequency_slope)
    fit_a = {{"slope", to_json(a.frequency_slope->slope)}, {"stderr", to_json(a.frequency_slope->slope_stderr)},
             {"r_squared", to_json(a.frequency_slope->r_squared)}, {"points", a.frequency_slope->points}};
  if (a.step_scaling)
    fit_b = {{"alpha_s", to_json(a.step_scaling->alpha_s)}, {"stderr", to_json(a.step_scaling->alpha_s_stderr)},
             {"loss_floor", to_json(a.step_scaling->loss_floor)}, {"coefficient", to_json(a.step_scaling->coefficient)},
             {"r_squared", to_json(a.step_scaling->r_squared)}, {"first_step", a.step_scaling->first_step},
             {"last_step", a.step_scaling->last_step}, {"points", a.step_scaling->points}};
  return {{"dir", a.dir.string()},
          {"group", group},
          {"config", a.config},
          {"status", a.status},
          {"message", a.message},
          {"metrics_truncated", a.metrics_truncated},
          {"tau_bits", a.tau_bits},
          {"steps", a.last_step},
          {"p_k", a.p_k},
          {"T_k", array_of(a.T_k)},
          {"T_first", to_json(a.T_first)},
          {"coverage", array_of(a.coverage)},
          {"sal", array_of(a.sal)},
          {"fraction_learned", a.fraction_learned},
          {"final_mean_loss", to_json(a.final_mean_loss)},
          {"frequency_slope", fit_a},
          {"step_scaling", fit_b},
          {"predicted_alpha_s", to_json(a.predicted_alpha_s)},
          {"atsr", to_json(a.atsr)},
          {"spectra", spectra_json(a.spectra)}};
}

// Key columns of coverage.csv / sal.csv: the group keys, plus optimizer.type, optimizer.lr and
// the variant keys when not among them, so the per-variant rows can always be told apart.
std::vector<std::string> view_keys(const AnalysisResult& r) {
  std::vector<std::string> keys = r.options.group_keys;
  std::vector<std::string> extra{"optimizer.type", "optimizer.lr"};
  extra.insert(extra.end(), r.variant_keys.begin(), r.variant_keys.end());
  for (const std::string& k : extra)
    if (std::find(keys.begin(), keys.end(), k) == keys.end()) keys.push_back(k);
  return keys;
}

// One row per (set, p): "group" rows for each group, "best_lr" rows for each variant at its
// chosen lr. A key the set is not fixed on (averaged over) is "*".
template <class StatsOf>
std::string per_p_csv(const AnalysisResult& r, StatsOf stats_of) {
  const std::vector<std::string> keys = view_keys(r);
  std::vector<std::string> header{"view"};
  header.insert(header.end(), keys.begin(), keys.end());
  for (const char* h : {"p", "runs", "defined", "mean", "std"}) header.emplace_back(h);
  std::string out = csv_line(header);
  const auto emit = [&](const std::string& view, const std::vector<std::string>& key_cells, const RunSet& s) {
    const std::vector<Stat>& stats = stats_of(s);
    for (std::size_t j = 0; j < r.options.p_grid.size(); ++j) {
      std::vector<std::string> row{view};
      row.insert(row.end(), key_cells.begin(), key_cells.end());
      for (const std::string& c : {csv_cell(r.options.p_grid[j]), std::to_string(stats[j].total),
                                   std::to_string(stats[j].defined), csv_cell(stats[j].mean), csv_cell(stats[j].std)})
        row.push_back(c);
      out += csv_line(row);
    }
  };
  for (const Group& g : r.groups) {
    std::vector<std::string> cells;
    for (std::size_t i = 0; i < keys.size(); ++i) cells.push_back(i < g.key_values.size() ? csv_cell(g.key_values[i]) : "*");
    emit("group", cells, g.set);
  }
  for (const OptimizerView& o : r.optimizers) {
    std::vector<std::string> cells;
    for (const std::string& k : keys)
      cells.push_back(k == "optimizer.type"            ? o.optimizer
                      : k == "optimizer.lr"            ? csv_cell(o.ranking.front().lr)
                      : o.variant_values.contains(k) ? csv_cell(o.variant_values[k])
                                                       : "*");
    emit("best_lr", cells, o.at_best_lr);
  }
  return out;
}

}  // namespace

std::string runs_csv(const AnalysisResult& r) {
  const auto& keys = r.options.group_keys;
  const bool seed_grouped = std::find(keys.begin(), keys.end(), "seed") != keys.end();
  std::size_t n_tasks = 0;
  for (const RunAnalysis& a : r.runs) n_tasks = std::max(n_tasks, a.T_k.size());

  std::vector<std::string> header{"dir"};
  header.insert(header.end(), keys.begin(), keys.end());
  if (!seed_grouped) header.emplace_back("seed");
  for (const char* h : {"status", "metrics_truncated", "steps", "tau_bits", "final_mean_loss", "fraction_learned", "T_first"})
    header.emplace_back(h);
  for (std::size_t k = 0; k < n_tasks; ++k) header.push_back(fmt::format("T_{}", k));
  for (const char* h : {"slope_logT_logp", "slope_logT_logp_se", "alpha_s", "alpha_s_se", "alpha_s_loss_floor",
                        "alpha_s_r2", "alpha_s_predicted"})
    header.emplace_back(h);

  std::string out = csv_line(header);
  for (const RunAnalysis& a : r.runs) {
    std::vector<std::string> row{a.dir.string()};
    for (const auto& v : a.group_values) row.push_back(csv_cell(v));
    if (!seed_grouped) row.push_back(csv_cell(value_at(a.config, "seed")));
    for (const std::string& c : {a.status, std::string(a.metrics_truncated ? "true" : "false"), std::to_string(a.last_step),
                                 csv_cell(a.tau_bits), csv_cell(a.final_mean_loss), csv_cell(a.fraction_learned), csv_cell(a.T_first)})
      row.push_back(c);
    for (std::size_t k = 0; k < n_tasks; ++k) row.push_back(k < a.T_k.size() ? csv_cell(a.T_k[k]) : "");
    const auto& fs = a.frequency_slope;
    const auto& ss = a.step_scaling;
    for (const std::string& c :
         {fs ? csv_cell(fs->slope) : "", fs ? csv_cell(fs->slope_stderr) : "", ss ? csv_cell(ss->alpha_s) : "",
          ss ? csv_cell(ss->alpha_s_stderr) : "", ss ? csv_cell(ss->loss_floor) : "", ss ? csv_cell(ss->r_squared) : "",
          csv_cell(a.predicted_alpha_s)})
      row.push_back(c);
    out += csv_line(row);
  }
  return out;
}

std::string coverage_csv(const AnalysisResult& r) {
  return per_p_csv(r, [](const RunSet& s) -> const std::vector<Stat>& { return s.coverage; });
}

std::string sal_csv(const AnalysisResult& r) {
  return per_p_csv(r, [](const RunSet& s) -> const std::vector<Stat>& { return s.sal; });
}

json analysis_json(const AnalysisResult& r) {
  json runs = json::array();
  for (const RunAnalysis& a : r.runs) runs.push_back(run_json(a, r.options.group_keys));
  json groups = json::array();
  for (const Group& g : r.groups) {
    json key = json::object();
    for (std::size_t i = 0; i < g.key_values.size(); ++i) key[r.options.group_keys[i]] = g.key_values[i];
    json j = to_json(g.set);
    j["key"] = key;
    j["pooled"] = g.pooled;
    groups.push_back(j);
  }
  json optimizers = json::array();
  for (const OptimizerView& o : r.optimizers) {
    json ranking = json::array();
    for (const LrCandidate& c : o.ranking)
      ranking.push_back({{"lr", c.lr}, {"runs", c.runs}, {"metric", to_json(c.metric)},
                         {"fraction_learned", to_json(c.fraction_learned)},
                         {"final_mean_loss", to_json(c.final_mean_loss)}});
    json j = to_json(o.at_best_lr);
    j["optimizer"] = o.optimizer;
    j["label"] = view_label(o);
    j["variant"] = o.variant;
    j["variant_values"] = o.variant_values;
    j["pooled"] = o.pooled;
    j["lr"] = o.ranking.front().lr;
    j["ranking"] = ranking;
    j["widths"] = o.widths;
    optimizers.push_back(j);
  }
  return {{"tau_bits", r.options.tau_bits ? json(*r.options.tau_bits) : json(nullptr)},
          {"p", r.options.p_grid},
          {"group_by", r.options.group_keys},
          {"compare", r.options.compare_keys.empty() ? json(nullptr) : json(r.options.compare_keys)},
          {"variant_keys", r.variant_keys},
          {"select_lr", to_string(r.options.select_lr)},
          {"runs", runs},
          {"groups", groups},
          {"optimizers", optimizers}};
}

std::string report_text(const AnalysisResult* sparse, const IclReport* icl) {
  std::string out = sparse ? render_report_text(*sparse) : "";
  if (icl) out.append(sparse ? "\n" : "").append(render_icl_text(*icl));
  return out;
}

std::string report_markdown(const AnalysisResult* sparse, const IclReport* icl) {
  std::string out = sparse ? render_report_markdown(*sparse) : "# skillrun analysis\n";
  if (icl) out.append("\n").append(render_icl_markdown(*icl));
  return out;
}

json report_json(const AnalysisResult* sparse, const IclReport* icl) {
  json j = sparse ? analysis_json(*sparse) : json::object();
  if (icl) j["icl"] = icl_json(*icl);
  return j;
}

std::vector<std::string> write_report_files(const AnalysisResult* sparse, const IclReport* icl,
                                            const std::filesystem::path& out) {
  std::error_code ec;
  std::filesystem::create_directories(out, ec);
  if (ec) throw RuntimeError(fmt::format("cannot create {}: {}", out.string(), ec.message()));
  std::vector<std::pair<std::string, std::string>> files;
  if (sparse)
    files = {{"runs.csv", runs_csv(*sparse)}, {"coverage.csv", coverage_csv(*sparse)}, {"sal.csv", sal_csv(*sparse)}};
  if (icl) files.insert(files.end(), {{"icl_runs.csv", icl_runs_csv(*icl)}, {"icl_table.csv", icl_table_csv(*icl)}});
  files.insert(files.end(), {{"summary.md", report_markdown(sparse, icl)},
                             {"analysis.json", report_json(sparse, icl).dump(2) + "\n"}});
  std::vector<std::string> names;
  for (const auto& [name, text] : files) write_file_atomic(out / name, text), names.push_back(name);
  return names;
}

}  // namespace skillrun
