// The human-readable report of `skillrun analyze`: the same tables rendered as aligned text
// (stdout) or Markdown (summary.md, for pasting into a paper draft). A value that was not
// reached prints as "—", with "(d/n)" when only d of the n runs behind it reached it.
#pragma once
#include <map>
#include <string>
#include <vector>

#include "analysis/aggregate.h"

namespace skillrun {

struct Table {
  std::string title;
  std::vector<std::string> header;
  std::vector<std::vector<std::string>> rows;
  std::string note;  // printed under the table
};

std::string render_text(const Table& t);
std::string render_markdown(const Table& t);

// The report's tables, in order: groups, best lr per variant (an optimizer type, or a variant of
// one: variants.h), T_k per subtask and T(p, τ) / Δ_SAL(p, τ) per variant at its best lr; notes
// under them name what runs averaged together differ in beyond their seeds.
std::vector<Table> summary_tables(const AnalysisResult& r);
// One line: how many runs, their statuses, the τ used.
std::string summary_headline(const AnalysisResult& r);

std::string render_report_text(const AnalysisResult& r);
std::string render_report_markdown(const AnalysisResult& r);

// "converged" for one run, else "2 converged, 1 max_steps".
std::string format_status(const std::map<std::string, int>& counts);

// "1200", "1200 ± 35", "—", "— (2/3)"; `decimals` digits after the point.
std::string format_stat(const Stat& s, int decimals);

}  // namespace skillrun
