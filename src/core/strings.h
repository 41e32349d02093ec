// Small string helpers shared by the config, analysis and sweep code.
#pragma once
#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace skillrun {

// The pieces of `text` between separators, empty pieces kept: "a..b" -> {"a", "", "b"},
// "" -> {""}.
inline std::vector<std::string> split(std::string_view text, char sep) {
  std::vector<std::string> parts;
  std::size_t start = 0;
  while (true) {
    const std::size_t end = text.find(sep, start);
    parts.emplace_back(text.substr(start, end == std::string_view::npos ? std::string_view::npos : end - start));
    if (end == std::string_view::npos) return parts;
    start = end + 1;
  }
}

// `text` within `width` bytes, its middle replaced by "..." when longer (names of runs differ
// anywhere, so both ends stay): for columns of terminal tables.
inline std::string fit_middle(const std::string& text, std::size_t width) {
  if (text.size() <= width || width < 5) return text;
  const std::size_t head = (width - 3) / 2, tail = width - 3 - head;
  return text.substr(0, head) + "..." + text.substr(text.size() - tail);
}

// A duration for people, compact: "3h12m", "14m05s", "40s"; "?" for a negative, NaN or absurd one.
inline std::string format_duration(double seconds) {
  if (!(seconds >= 0) || seconds > 1e9) return "?";
  const auto s = static_cast<long long>(seconds + 0.5);
  const auto two = [](long long v) { return (v < 10 ? "0" : "") + std::to_string(v); };
  if (s >= 3600) return std::to_string(s / 3600) + "h" + two(s % 3600 / 60) + "m";
  if (s >= 60) return std::to_string(s / 60) + "m" + two(s % 60) + "s";
  return std::to_string(s) + "s";
}

// The whole of `s` as a number, else empty: "12" -> 12, "12x", "" and out-of-range -> empty.
inline std::optional<int64_t> parse_int(const std::string& s) {
  if (s.empty()) return std::nullopt;
  char* end = nullptr;
  errno = 0;
  const long long v = std::strtoll(s.c_str(), &end, 10);
  if (end != s.c_str() + s.size() || errno != 0) return std::nullopt;
  return v;
}

// The whole of `s` as a double ("nan" and "inf" included), else empty.
inline std::optional<double> parse_double(const std::string& s) {
  if (s.empty()) return std::nullopt;
  char* end = nullptr;
  const double v = std::strtod(s.c_str(), &end);
  if (end != s.c_str() + s.size()) return std::nullopt;
  return v;
}

// The edit distance between a and b counting insertions, deletions, substitutions and swaps of
// two neighbouring letters ("widht" -> "width" is 1): optimal string alignment.
inline std::size_t edit_distance(std::string_view a, std::string_view b) {
  const std::size_t n = b.size();
  std::vector<std::size_t> before(n + 1), previous(n + 1), current(n + 1);
  for (std::size_t j = 0; j <= n; ++j) previous[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    current[0] = i;
    for (std::size_t j = 1; j <= n; ++j) {
      current[j] = std::min({previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1])
        current[j] = std::min(current[j], before[j - 2] + 1);
    }
    std::swap(before, previous);
    std::swap(previous, current);
  }
  return previous[n];
}

// The candidate closest to a mistyped `word`, when one is close enough to be meant (at most a
// third of the word's letters, and at least 1, changed): "analyse" -> "analyze"; else empty.
template <class Names>
std::optional<std::string> nearest_name(std::string_view word, const Names& candidates) {
  std::optional<std::string> best;
  std::size_t best_distance = std::max<std::size_t>(1, word.size() / 3) + 1;
  for (const auto& candidate : candidates) {
    const std::size_t d = edit_distance(word, candidate);
    if (d < best_distance) {
      best_distance = d;
      best = std::string(candidate);
    }
  }
  return best;
}

}  // namespace skillrun
