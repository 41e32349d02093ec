// Sweep files: a base config plus axes (each a dotted config key with a list of values, expanded
// as a Cartesian product) and zip groups (keys whose values vary together), expanded into an
// ordered list of runs. The order and the directory names are a function of the sweep file
// alone, so run I is the same run on every machine (Slurm array index I). Format: docs/SWEEPS.md.
#pragma once
#include <cstddef>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace skillrun {

// One varied key of a run and its value.
struct SweepOverride {
  std::string key;  // dotted config key, e.g. optimizer.lr
  nlohmann::json value;
};

struct SweepRun {
  std::size_t index = 0;  // position in the expansion: the --index / Slurm array index
  std::string name;       // directory name: key=value pairs in axis order, joined by ','
  std::vector<SweepOverride> overrides;  // in the order the keys appear in the file
  nlohmann::json config;                 // resolved: to_json of the validated config
};

struct Sweep {
  std::string name;                 // "name" of the sweep file, else the file's stem
  std::filesystem::path file;       // the sweep file; empty when expanded from memory
  nlohmann::json base;              // "base" as written: an object or a path string
  std::vector<std::string> base_overrides;  // --set KEY=VALUE applied to the base
  std::vector<SweepRun> runs;
};

// Reads a sweep file and expands it. `base_overrides` (--set) apply to the base config before
// the axes. Throws ConfigError naming the JSON path (unknown key, zip lists of unequal length)
// or the run (a value the config rejects), UsageError for an unreadable file.
Sweep load_sweep(const std::filesystem::path& file, const std::vector<std::string>& base_overrides = {});

// The same from a parsed sweep: a "base" path is resolved against `base_dir`; `default_name`
// is the sweep's name when it has no "name" key.
Sweep expand_sweep(const nlohmann::ordered_json& spec, const std::filesystem::path& base_dir,
                   const std::string& default_name, const std::vector<std::string>& base_overrides = {});

// A value as it appears in a run name, deterministic and file-name safe: 0.01 -> "0.01",
// 1e-4 -> "0.0001", 1e30 -> "1e+30", 250 -> "250", "adam" -> "adam", true -> "true"; characters
// other than [A-Za-z0-9._+-] become '_'.
std::string format_sweep_value(const nlohmann::json& value);

// Longer run and sweep names are cut and made unique by a hash, to stay well below NAME_MAX (255).
inline constexpr std::size_t kMaxNameLength = 200;

// `text` as one file name that cannot leave the directory it is put in, whatever `text` holds
// ("/", "..", control characters, newlines, bytes of UTF-8): characters other than
// [A-Za-z0-9._+,=-] become '_', and so do a leading '.' and the second '.' of "..", so the
// result is never "", "." or "..", never hidden and never holds a '/'. Over `max_length`
// characters (at least 32), it is cut and ends with '~' and a hash of the whole text. Run names,
// sweep names and the default run directory go through it.
std::string safe_path_component(std::string_view text, std::size_t max_length = kMaxNameLength);

}  // namespace skillrun
