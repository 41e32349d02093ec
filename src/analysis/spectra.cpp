#include "analysis/spectra.h"

#include <algorithm>
#include <charconv>
#include <iterator>
#include <sstream>
#include <utility>

#include <fmt/format.h>

#include "core/error.h"
#include "core/fs.h"

namespace skillrun {

namespace {
template <class T>
bool parse_field(const std::string& s, T& out) {
  const auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && ptr == s.data() + s.size();
}
}  // namespace

std::vector<SpectraRow> read_spectra(const std::filesystem::path& dir) {
  const std::filesystem::path file = dir / "spectra.csv";
  std::error_code ec;
  if (!std::filesystem::exists(file, ec)) return {};
  const std::string text = read_file(file);
  std::vector<SpectraRow> rows;
  std::size_t pos = text.find('\n');  // after the header
  int line = 1;
  while (pos != std::string::npos && pos + 1 < text.size()) {
    const std::size_t start = pos + 1;
    pos = text.find('\n', start);
    if (pos == std::string::npos) break;  // a torn last line: the run was killed while writing it
    ++line;
    std::vector<std::string> f;
    std::istringstream fields(text.substr(start, pos - start));
    for (std::string x; std::getline(fields, x, ',');) f.push_back(x);
    SpectraRow r;
    const bool ok = f.size() >= 9 && parse_field(f[0], r.step) && parse_field(f[5], r.sigma_max) &&
                    parse_field(f[6], r.stable_rank) && parse_field(f[7], r.effective_rank) &&
                    parse_field(f[8], r.spectral_entropy);
    if (!ok) throw RuntimeError(fmt::format("{}:{}: malformed row", file.string(), line));
    r.tensor = f[1];
    r.of = f[2];
    rows.push_back(std::move(r));
  }
  return rows;
}

std::vector<SpectraAt> spectra_at(const std::vector<SpectraRow>& rows, const std::vector<std::optional<int64_t>>& times) {
  std::vector<std::pair<std::string, std::string>> series;
  for (const SpectraRow& r : rows) {
    const std::pair key{r.tensor, r.of};
    if (std::find(series.begin(), series.end(), key) == series.end()) series.push_back(key);
  }
  std::vector<SpectraAt> out;
  for (const auto& [tensor, of] : series) {
    for (std::size_t m = 0; m < std::size(kSpectraMoments); ++m) {
      SpectraAt a{tensor, of, kSpectraMoments[m], std::nullopt, std::nullopt, std::nullopt};
      const std::optional<int64_t> t = m < times.size() ? times[m] : std::nullopt;
      if (t) {
        for (const SpectraRow& r : rows) {  // rows are in step order: the last at or before t
          if (r.tensor != tensor || r.of != of || r.step > *t) continue;
          a.step = r.step;
          a.stable_rank = r.stable_rank;
          a.effective_rank = r.effective_rank;
        }
      }
      out.push_back(std::move(a));
    }
  }
  return out;
}

}  // namespace skillrun
