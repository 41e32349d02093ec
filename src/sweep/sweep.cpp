// Sweep expansion. Axes and zip groups keep the order they have in the file (it is parsed as an
// ordered_json) and expand as nested loops, the first outermost; appending values to the first
// list is the one edit that keeps every existing index. Directories are found by name, not by
// index, so any edit keeps finished runs. Overrides go through apply_override, the dotted
// setting of `--set`, and every run is validated with parse_experiment before anything runs.
#include "sweep/sweep.h"

#include <algorithm>
#include <array>
#include <charconv>
#include <cstdint>
#include <functional>
#include <map>

#include <fmt/format.h>

#include "config/experiment.h"
#include "core/error.h"
#include "core/fs.h"

namespace skillrun {
namespace {

using nlohmann::json;
using nlohmann::ordered_json;

// Larger expansions are almost surely a mistake in the file (and would not fit a Slurm array).
constexpr std::size_t kMaxRuns = 100000;
// One dimension of the product: a single axis, or a zip group whose keys move together.
struct Dimension {
  std::vector<std::string> keys;
  std::vector<std::vector<json>> tuples;  // tuples[i][k]: value of keys[k] at position i
};

bool safe_name_char(char ch) {
  return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '.' ||
         ch == '_' || ch == '+' || ch == '-';
}

// Shortest text that reads back as the same double, in fixed notation unless that is long.
std::string format_double(double x) {
  std::array<char, 64> buf{};
  auto r = std::to_chars(buf.data(), buf.data() + buf.size(), x, std::chars_format::fixed);
  if (r.ec == std::errc() && r.ptr - buf.data() <= 16) return std::string(buf.data(), r.ptr);
  r = std::to_chars(buf.data(), buf.data() + buf.size(), x);
  return std::string(buf.data(), r.ptr);
}

uint64_t fnv1a(const std::string& s) {
  uint64_t h = 14695981039346656037ull;
  for (unsigned char ch : s) h = (h ^ ch) * 1099511628211ull;
  return h;
}

// A key the sweep varies must be a dotted config key, like `--set` takes.
void check_dotted_key(const std::string& key, const std::string& path) {
  json scratch;
  try {
    apply_override(scratch, key + "=0");
  } catch (const UsageError&) {
    throw ConfigError(path, "not a dotted config key such as optimizer.lr");
  }
}

const ordered_json& value_list(const ordered_json& v, const std::string& path) {
  if (!v.is_array() || v.empty()) throw ConfigError(path, "must be a non-empty list of values, got " + v.dump());
  return v;
}

using ClaimKey = std::function<void(const std::string& key, const std::string& path)>;

void add_axes(const ordered_json& axes, const ClaimKey& claim, std::vector<Dimension>& dims) {
  if (!axes.is_object()) throw ConfigError("axes", "must be an object {\"dotted.key\": [values...]}");
  for (const auto& [key, values] : axes.items()) {
    const std::string path = "axes." + key;
    claim(key, path);
    Dimension d{{key}, {}};
    for (const auto& v : value_list(values, path)) d.tuples.push_back({json(v)});
    dims.push_back(std::move(d));
  }
}

void add_zip_groups(const ordered_json& zip, const ClaimKey& claim, std::vector<Dimension>& dims) {
  if (!zip.is_array()) throw ConfigError("zip", "must be a list of groups {\"dotted.key\": [values...]}");
  for (std::size_t g = 0; g < zip.size(); ++g) {
    const ordered_json& group = zip[g];
    const std::string group_path = fmt::format("zip[{}]", g);
    if (!group.is_object() || group.empty())
      throw ConfigError(group_path, "must be a non-empty object {\"dotted.key\": [values...]}");
    Dimension d;
    std::string first_path;
    for (const auto& [key, values] : group.items()) {
      const std::string path = group_path + "." + key;
      claim(key, path);
      value_list(values, path);
      if (d.keys.empty()) {
        d.tuples.resize(values.size());
        first_path = path;
      } else if (values.size() != d.tuples.size()) {
        throw ConfigError(path, fmt::format("has {} values but {} has {}: the lists of a zip group pair up "
                                            "by position and must have equal lengths",
                                            values.size(), first_path, d.tuples.size()));
      }
      d.keys.push_back(key);
      for (std::size_t i = 0; i < values.size(); ++i) d.tuples[i].push_back(json(values[i]));
    }
    dims.push_back(std::move(d));
  }
}

std::vector<Dimension> parse_dimensions(const ordered_json& spec) {
  std::vector<Dimension> dims;
  std::map<std::string, std::string> varied_at;  // key -> path where it is varied
  const auto claim = [&](const std::string& key, const std::string& path) {
    check_dotted_key(key, path);
    const auto [it, fresh] = varied_at.emplace(key, path);
    if (!fresh) throw ConfigError(path, "is varied twice (also at " + it->second + ")");
  };

  // Dimensions in the order "axes" and "zip" appear in the file, so the file reads like the
  // nested loops it expands to.
  for (const auto& [section, content] : spec.items()) {
    if (section == "axes") add_axes(content, claim, dims);
    if (section == "zip") add_zip_groups(content, claim, dims);
  }
  return dims;
}

json load_base(const ordered_json& spec, const std::filesystem::path& base_dir) {
  const auto it = spec.find("base");
  if (it == spec.end()) throw ConfigError("base", "missing: a config object, or the path of a config file");
  if (it->is_object()) return json(*it);
  if (it->is_string()) {
    std::filesystem::path p = it->get<std::string>();
    if (p.is_relative()) p = base_dir / p;
    return read_json_file(p.string());
  }
  throw ConfigError("base", "must be a config object or the path of a config file, got " + it->dump());
}

std::string run_name(const std::vector<SweepOverride>& overrides) {
  if (overrides.empty()) return "base";
  std::string name;
  for (const auto& o : overrides) {
    if (!name.empty()) name += ',';
    name += o.key + "=" + format_sweep_value(o.value);
  }
  return safe_path_component(name);
}

}  // namespace

std::string format_sweep_value(const json& value) {
  std::string text;
  if (value.is_string())
    text = value.get<std::string>();
  else if (value.is_number_float())
    text = format_double(value.get<double>());
  else
    text = value.dump();  // integers, booleans, null; objects compactly with sorted keys
  for (char& ch : text)
    if (!safe_name_char(ch)) ch = '_';
  return text;
}

std::string safe_path_component(std::string_view text, std::size_t max_length) {
  max_length = std::max<std::size_t>(max_length, 32);
  std::string name;
  for (const char ch : text) {
    const bool dot_dot = ch == '.' && (name.empty() || name.back() == '.');  // leading '.', or ".."
    name += (safe_name_char(ch) || ch == ',' || ch == '=') && !dot_dot ? ch : '_';
  }
  if (name.empty()) name = "_";
  if (name.size() > max_length)
    name = fmt::format("{}~{:016x}", name.substr(0, max_length - 17), fnv1a(std::string(text)));
  return name;
}

Sweep expand_sweep(const ordered_json& spec, const std::filesystem::path& base_dir, const std::string& default_name,
                   const std::vector<std::string>& base_overrides) {
  if (!spec.is_object()) throw ConfigError("", "a sweep file must be a JSON object with \"base\" and \"axes\"");
  for (const auto& [key, value] : spec.items()) {
    (void)value;
    if (key != "base" && key != "axes" && key != "zip" && key != "name" && key != "description")
      throw ConfigError(key, "unknown key (allowed: base, axes, zip, name, description)");
  }

  Sweep sweep;
  // A name from the file must be a safe directory name as written; one from the file's stem is
  // made one (`.hidden.json` runs into runs/_hidden).
  sweep.name = safe_path_component(default_name);
  if (const auto it = spec.find("name"); it != spec.end()) {
    if (!it->is_string() || it->get<std::string>().empty())
      throw ConfigError("name", "must be a non-empty string, got " + it->dump());
    sweep.name = it->get<std::string>();
    if (format_sweep_value(sweep.name) != sweep.name || safe_path_component(sweep.name) != sweep.name)
      throw ConfigError("name", it->dump() + " is not a safe directory name (letters, digits, . _ + -, not "
                                             "starting with '.', no \"..\", at most " +
                                    std::to_string(kMaxNameLength) + " characters)");
  }

  if (const auto it = spec.find("base"); it != spec.end()) sweep.base = json(*it);
  sweep.base_overrides = base_overrides;
  json base = load_base(spec, base_dir);
  for (const auto& assignment : base_overrides) apply_override(base, assignment);

  const std::vector<Dimension> dims = parse_dimensions(spec);
  std::size_t total = 1;
  for (const auto& d : dims) {
    total *= d.tuples.size();
    if (total > kMaxRuns) throw ConfigError("axes", fmt::format("the sweep expands to more than {} runs", kMaxRuns));
  }

  std::map<std::string, std::size_t> index_of_name;
  for (std::size_t r = 0; r < total; ++r) {
    // Mixed-radix digits of r, the last dimension varying fastest.
    std::vector<std::size_t> position(dims.size());
    std::size_t rest = r;
    for (std::size_t d = dims.size(); d-- > 0;) {
      position[d] = rest % dims[d].tuples.size();
      rest /= dims[d].tuples.size();
    }
    SweepRun run;
    run.index = r;
    for (std::size_t d = 0; d < dims.size(); ++d)
      for (std::size_t k = 0; k < dims[d].keys.size(); ++k)
        run.overrides.push_back({dims[d].keys[k], dims[d].tuples[position[d]][k]});
    run.name = run_name(run.overrides);
    const std::string label = fmt::format("run {} ({})", r, run.name);

    json config = base;
    try {
      for (const auto& o : run.overrides) apply_override(config, o.key + "=" + o.value.dump());
      run.config = to_json(parse_experiment(config));
    } catch (const ConfigError& e) {
      throw ConfigError(label, e.what());
    } catch (const UsageError& e) {
      throw ConfigError(label, e.what());
    }
    const auto [it, fresh] = index_of_name.emplace(run.name, r);
    if (!fresh)
      throw ConfigError(label, fmt::format("has the same directory name as run {}: two values of an axis "
                                           "are equal or format alike",
                                           it->second));
    sweep.runs.push_back(std::move(run));
  }
  return sweep;
}

Sweep load_sweep(const std::filesystem::path& file, const std::vector<std::string>& base_overrides) {
  // Ordered, to keep the order of the axes, which the sorted nlohmann::json would lose.
  const ordered_json spec = read_ordered_json_file(file.string());
  Sweep sweep = expand_sweep(spec, file.parent_path(), file.stem().string(), base_overrides);
  sweep.file = file;
  return sweep;
}

}  // namespace skillrun
