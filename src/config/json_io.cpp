// Getting JSON into skillrun: the one strict reader every file and value goes through (our own
// line/column for malformed input, so messages do not depend on the library's wording; bounded
// nesting, no duplicate keys, no bytes after the value), reading a config file, and applying the
// `--set a.b.c=value` overrides of the command line. Validation happens later, in
// parse_experiment, so an overridden key is reported exactly like one from the file.
#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string_view>
#include <vector>

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

// What is wrong with a JSON text, found before any value is built: nlohmann builds and destroys
// values recursively, so a deep enough text (58 500 nested brackets) would overflow the stack.
struct JsonProblem {
  enum class Kind { kNone, kSyntax, kTooDeep, kDuplicateKey } kind = Kind::kNone;
  std::size_t byte = 0;  // kSyntax: 0-based offset where the parser stopped
  std::string reason;    // kSyntax: the library's explanation, shortened
  std::string path;      // kDuplicateKey: dotted path of the key, e.g. optimizer.lr or zip[0].seed
};

// A SAX pass over the text (the library's SAX parser is iterative, whatever the depth) that
// stops at the first syntax error, nesting deeper than `max_depth`, or key seen twice in one
// object. Only then is the value built.
class StrictnessCheck : public nlohmann::json_sax<json> {
 public:
  explicit StrictnessCheck(int max_depth) : max_depth_(max_depth) {}
  JsonProblem problem;

  bool null() override { return element(); }
  bool boolean(bool) override { return element(); }
  bool number_integer(number_integer_t) override { return element(); }
  bool number_unsigned(number_unsigned_t) override { return element(); }
  bool number_float(number_float_t, const string_t&) override { return element(); }
  bool string(string_t&) override { return element(); }
  bool binary(binary_t&) override { return element(); }
  bool start_object(std::size_t) override { return open(true); }
  bool start_array(std::size_t) override { return open(false); }
  bool end_object() override { return close(); }
  bool end_array() override { return close(); }

  bool key(string_t& k) override {
    Frame& object = frames_.back();
    object.key = k;
    if (object.keys.insert(k).second) return true;
    problem.kind = JsonProblem::Kind::kDuplicateKey;
    for (const Frame& f : frames_) {
      // Appended piece by piece: GCC 12 warns (-Wrestrict, falsely) on "literal" + temporary.
      if (f.object) {
        if (!problem.path.empty()) problem.path += '.';
        problem.path += f.key;
      } else {
        problem.path.append("[").append(std::to_string(f.count - 1)).append("]");
      }
    }
    return false;
  }

  bool parse_error(std::size_t position, const std::string&, const nlohmann::detail::exception& e) override {
    problem.kind = JsonProblem::Kind::kSyntax;
    // `position` counts the characters read, the offending one included.
    problem.byte = position > 0 ? position - 1 : 0;
    problem.reason = short_parse_reason(e.what());
    return false;
  }

 private:
  struct Frame {
    bool object;
    std::set<std::string> keys;  // objects: keys seen so far
    std::string key;             // objects: the key whose value is being read
    std::size_t count = 0;       // arrays: elements begun so far
  };

  bool element() {
    if (!frames_.empty() && !frames_.back().object) ++frames_.back().count;
    return true;
  }
  bool open(bool object) {
    element();
    if (static_cast<int>(frames_.size()) >= max_depth_) {
      problem.kind = JsonProblem::Kind::kTooDeep;
      return false;
    }
    frames_.push_back({object, {}, {}, 0});
    return true;
  }
  bool close() {
    frames_.pop_back();
    return true;
  }

  int max_depth_;
  std::vector<Frame> frames_;
};

JsonProblem check_json_text(const std::string& text, int max_depth) {
  StrictnessCheck check(max_depth);
  // The library takes a NUL byte for the end of the input and ignores whatever follows it.
  if (const auto nul = text.find('\0'); nul != std::string::npos) {
    check.problem = {JsonProblem::Kind::kSyntax, nul, "a NUL byte, which JSON text cannot contain", ""};
    return check.problem;
  }
  json::sax_parse(text, &check);
  return check.problem;
}

std::string too_deep(int max_depth) {
  return "nesting too deep (limit: " + std::to_string(max_depth) + " levels of arrays and objects)";
}

template <typename Json>
Json parse_strictly(const std::string& text, const std::string& source) {
  const JsonProblem p = check_json_text(text, kMaxJsonDepth);
  switch (p.kind) {
    case JsonProblem::Kind::kNone:
      return Json::parse(text);
    case JsonProblem::Kind::kSyntax: {
      const auto [line, column] = line_and_column(text, p.byte);
      throw ConfigError("", source + ": malformed JSON at line " + std::to_string(line) + ", column " +
                                std::to_string(column) + ": " + p.reason);
    }
    case JsonProblem::Kind::kTooDeep:
      throw ConfigError("", source + ": " + too_deep(kMaxJsonDepth));
    case JsonProblem::Kind::kDuplicateKey:
      throw ConfigError(p.path, "duplicate key in " + source);
  }
  throw std::logic_error("unreachable");
}

std::string read_text_file(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) {
    throw UsageError("cannot read config file " + path + ": it is a directory");
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) throw UsageError("cannot read config file " + path + ": " + std::strerror(errno));
  std::ostringstream buffer;
  buffer << in.rdbuf();
  if (in.bad()) throw UsageError("cannot read config file " + path + ": read failed");
  return buffer.str();
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

json parse_json(const std::string& text, const std::string& source) { return parse_strictly<json>(text, source); }

nlohmann::ordered_json parse_ordered_json(const std::string& text, const std::string& source) {
  return parse_strictly<nlohmann::ordered_json>(text, source);
}

json read_json_file(const std::string& path) { return parse_json(read_text_file(path), path); }

nlohmann::ordered_json read_ordered_json_file(const std::string& path) {
  return parse_ordered_json(read_text_file(path), path);
}

std::string pack_signature(const json& resolved_config) {
  json shared = resolved_config;
  if (shared.is_object())
    for (const char* key : {"seed", "optimizer", "name"}) shared.erase(key);
  return shared.dump();
}

std::string json_difference(const json& ours, const json& theirs, std::string_view ours_where,
                            std::string_view theirs_where, int max_shown) {
  const auto value_at = [](const json& j, const json::json_pointer& p) {
    return j.contains(p) ? j.at(p).dump() : std::string("absent");
  };
  std::string keys;
  int shown = 0;
  for (const auto& op : json::diff(ours, theirs)) {
    if (shown++ == max_shown) {
      keys += ", ...";
      break;
    }
    const json::json_pointer at(op.at("path").get<std::string>());
    std::string key = at.to_string().empty() ? std::string() : at.to_string().substr(1);  // "/a/b" -> "a.b"
    std::replace(key.begin(), key.end(), '/', '.');
    keys += (keys.empty() ? "" : ", ") + key + " (" + value_at(ours, at) + " " + std::string(ours_where) + ", " +
            value_at(theirs, at) + " " + std::string(theirs_where) + ")";
  }
  return keys;
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
  // plain string, so that `--set optimizer.type=adam` needs no shell-escaped quotes. The value
  // sits parts.size() levels deep in the config, which must stay within kMaxJsonDepth too.
  const int depth_left = kMaxJsonDepth - static_cast<int>(parts.size());
  if (depth_left < 0) throw UsageError("--set " + key + ": " + too_deep(kMaxJsonDepth));
  const JsonProblem problem = check_json_text(text, depth_left);
  if (problem.kind == JsonProblem::Kind::kTooDeep)
    throw UsageError("--set " + key + ": " + too_deep(kMaxJsonDepth) + ", the key's levels included");
  if (problem.kind == JsonProblem::Kind::kDuplicateKey)
    throw UsageError("--set " + key + ": " + key + "." + problem.path + ": duplicate key");
  json value;
  if (problem.kind == JsonProblem::Kind::kNone) {
    value = json::parse(text);
  } else {
    value = text;
    try {
      (void)value.dump();  // the library's UTF-8 check; a config must be writable as JSON
    } catch (const json::type_error&) {
      throw UsageError("--set " + key + ": the value is not valid UTF-8");
    }
  }

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
