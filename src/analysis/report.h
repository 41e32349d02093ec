// The machine-readable outputs of `skillrun analyze` and the writing of the --out directory:
// runs.csv (one row per run), coverage.csv and sal.csv (T(p, τ) and Δ_SAL(p, τ) per group and
// per optimizer at its best lr), analysis.json (everything, read by scripts/plot.py) and
// summary.md. In CSV an undefined value is an empty cell; in JSON it is null.
#pragma once
#include <filesystem>
#include <string>

#include <nlohmann/json.hpp>

#include "analysis/aggregate.h"

namespace skillrun {

std::string runs_csv(const AnalysisResult& r);
std::string coverage_csv(const AnalysisResult& r);
std::string sal_csv(const AnalysisResult& r);
nlohmann::json analysis_json(const AnalysisResult& r);

// Creates `out` and writes the five files there, each atomically.
void write_report_files(const AnalysisResult& r, const std::filesystem::path& out);

}  // namespace skillrun
