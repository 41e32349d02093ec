// The machine-readable outputs of `skillrun analyze` and the writing of the --out directory:
// runs.csv (one row per run), coverage.csv and sal.csv (T(p, τ) and Δ_SAL(p, τ) per group and
// per variant at its best lr), analysis.json (everything, read by scripts/plot.py) and
// summary.md, plus icl_runs.csv and icl_table.csv for icl_linreg runs (icl_report.h). In CSV
// an undefined value is an empty cell; in JSON it is null.
#pragma once
#include <filesystem>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "analysis/aggregate.h"
#include "analysis/icl_report.h"

namespace skillrun {

// CSV writing shared by the reports: a cell is quoted only when it holds a comma, quote or
// newline; numbers with {:.9g} (NaN and null: empty), steps as integers, strings bare.
std::string csv_line(const std::vector<std::string>& cells);
std::string csv_cell(double v);
std::string csv_cell(const std::optional<double>& v);
std::string csv_cell(const std::optional<int64_t>& v);
std::string csv_cell(const nlohmann::json& v);

std::string runs_csv(const AnalysisResult& r);
std::string coverage_csv(const AnalysisResult& r);
std::string sal_csv(const AnalysisResult& r);
nlohmann::json analysis_json(const AnalysisResult& r);

// The whole report over sparse_parity runs (`sparse`) and/or icl_linreg runs (`icl`); either
// may be null. With only sparse-parity runs these are exactly render_report_text/markdown and
// analysis_json; icl runs add their tables after them and an "icl" key to the JSON.
std::string report_text(const AnalysisResult* sparse, const IclReport* icl);
std::string report_markdown(const AnalysisResult* sparse, const IclReport* icl);
nlohmann::json report_json(const AnalysisResult* sparse, const IclReport* icl);

// Creates `out` and writes there, each atomically: runs.csv, coverage.csv and sal.csv when there
// are sparse-parity runs, icl_runs.csv and icl_table.csv when there are icl runs, and always
// summary.md and analysis.json. Returns the names written.
std::vector<std::string> write_report_files(const AnalysisResult* sparse, const IclReport* icl,
                                            const std::filesystem::path& out);

}  // namespace skillrun
