// Getting JSON into the config layer: reading a config file (with our own line/column for
// malformed input, so messages do not depend on the library's wording) and applying the
// `--set a.b.c=value` overrides of the command line. Validation happens later, in
// parse_experiment, so an overridden key is reported exactly like one from the file.
#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string_view>

#include "config/experiment.h"
#include "core/error.h"
#include "core/strings.h"

namespace skillrun {
namespace {

using nlohmann::json;

// 1-based line and column of the 0-based byte offset `pos` in `text`; a position past the end
// (unexpected end of input) lands just after the last character.
std::pair<std::size_t, std::size_t> line_and_column(const std::string& text, std::size_t pos) {
  pos = std::min(pos, text.size());
  std::size_t line = 1, line_start = 0;
  for (std::size_t i = 0; i < pos; ++i) {
    if (text[i] == '\n') {
      ++line;
      line_start = i + 1;
    }
  }
  return {line, pos - line_start + 1};
}

// The library's explanation without its "[json.exception...] parse error at ..." preamble.
std::string short_parse_reason(const std::string& what) {
  const auto syntax = what.find("syntax error");
  if (syntax != std::string::npos) return what.substr(syntax);
  const auto bracket = what.find("] ");
  return bracket == std::string::npos ? what : what.substr(bracket + 2);
}

bool is_identifier(std::string_view s) {
  if (s.empty()) return false;
  const auto alpha = [](char ch) {
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || ch == '_';
  };
  if (!alpha(s.front())) return false;
  return std::all_of(s.begin(), s.end(),
                     [&](char ch) { return alpha(ch) || (ch >= '0' && ch <= '9'); });
}

}  // namespace

json read_json_file(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) {
    throw UsageError("cannot read config file " + path + ": it is a directory");
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) throw UsageError("cannot read config file " + path + ": " + std::strerror(errno));
  std::ostringstream buffer;
  buffer << in.rdbuf();
  if (in.bad()) throw UsageError("cannot read config file " + path + ": read failed");
  const std::string text = buffer.str();

  try {
    return json::parse(text);
  } catch (const json::parse_error& e) {
    // e.byte is the 1-based index of the character the parser stopped at.
    const auto [line, column] = line_and_column(text, e.byte > 0 ? e.byte - 1 : 0);
    throw ConfigError("", path + ": malformed JSON at line " + std::to_string(line) + ", column " +
                              std::to_string(column) + ": " + short_parse_reason(e.what()));
  } catch (const json::exception& e) {
    // Number overflow (1e400) is reported without a position by the library.
    throw ConfigError("", path + ": malformed JSON: " + short_parse_reason(e.what()));
  }
}

void apply_override(json& j, const std::string& assignment) {
  const auto eq = assignment.find('=');
  const std::string key = assignment.substr(0, eq);
  const auto parts = split(key, '.');
  if (eq == std::string::npos || !std::all_of(parts.begin(), parts.end(), [](const std::string& p) {
        return is_identifier(p);
      })) {
    throw UsageError("--set \"" + assignment +
                     "\": expected KEY=VALUE with a dotted key such as optimizer.lr");
  }
  const std::string text = assignment.substr(eq + 1);

  // JSON when it parses, so numbers, booleans and objects keep their type; anything else is a
  // plain string, so that `--set optimizer.type=adam` needs no shell-escaped quotes.
  json value = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (value.is_discarded()) value = text;

  if (j.is_null()) j = json::object();
  json* node = &j;
  std::string walked;
  for (std::size_t i = 0; i < parts.size(); ++i) {
    if (!node->is_object()) {
      throw UsageError("--set \"" + assignment + "\": cannot set " + key + " because " +
                       (walked.empty() ? std::string("the config") : walked) +
                       " is not an object (it is " + node->dump() + ")");
    }
    json& child = (*node)[parts[i]];  // creates a null child, turned into an object below
    if (i + 1 == parts.size()) {
      child = std::move(value);
      return;
    }
    if (child.is_null()) child = json::object();
    walked += (walked.empty() ? "" : ".") + parts[i];
    node = &child;
  }
}

}  // namespace skillrun
