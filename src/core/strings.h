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

// `text` safe to print on a terminal, one line: control characters (C0, DEL, C1), bytes that are
// not UTF-8 and bidirectional overrides become visible escapes ("\n", "\x1b", "\u202e"), and a
// backslash is doubled, so that what is printed reads back as what was there. For names, notes
// and messages read from files that anyone may have written.
inline std::string printable(std::string_view text) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(text.size());
  const auto hex = [&](unsigned value, int digits) {
    for (int d = digits - 1; d >= 0; --d) out += kHex[(value >> (4 * d)) & 0xf];
  };
  for (std::size_t i = 0; i < text.size();) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c >= 0x20 && c < 0x7f) {
      if (c == '\\') out += '\\';
      out += static_cast<char>(c);
      ++i;
      continue;
    }
    if (c < 0x80) {  // C0 and DEL
      out += '\\';
      switch (c) {
        case '\n':
          out += 'n';
          break;
        case '\r':
          out += 'r';
          break;
        case '\t':
          out += 't';
          break;
        default:
          out += 'x';
          hex(c, 2);
      }
      ++i;
      continue;
    }
    // A UTF-8 sequence: its length from the lead byte, continuation bytes, no overlong form, no
    // surrogate, at most U+10FFFF.
    const std::size_t n = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 0;
    unsigned cp = n == 4 ? c & 0x07u : n == 3 ? c & 0x0fu : c & 0x1fu;
    bool ok = n != 0 && c < 0xf5 && i + n <= text.size();
    for (std::size_t k = 1; ok && k < n; ++k) {
      const auto b = static_cast<unsigned char>(text[i + k]);
      ok = (b & 0xc0) == 0x80;
      cp = (cp << 6) | (b & 0x3fu);
    }
    ok = ok && cp >= (n == 2 ? 0x80u : n == 3 ? 0x800u : 0x10000u) && cp <= 0x10ffff && !(cp >= 0xd800 && cp <= 0xdfff);
    if (!ok) {
      out += "\\x";
      hex(c, 2);
      ++i;
      continue;
    }
    const bool control =
        cp < 0xa0 || (cp >= 0x200b && cp <= 0x200f) || (cp >= 0x202a && cp <= 0x202e) || (cp >= 0x2066 && cp <= 0x2069);
    if (control) {
      out += "\\u";
      hex(cp, 4);
    } else {
      out.append(text.substr(i, n));
    }
    i += n;
  }
  return out;
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
