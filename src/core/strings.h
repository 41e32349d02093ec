// Small string helpers shared by the config, analysis and sweep code.
#pragma once
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

}  // namespace skillrun
