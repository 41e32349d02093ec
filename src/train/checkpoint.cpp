// Checkpoint files. Layout (little-endian host order; checkpoints are not meant to move
// between architectures): "SKRCKPT1", u64 header length, header JSON, float buffers in header
// order, u64 FNV-1a of everything before it.
#include "train/checkpoint.h"

#include <algorithm>
#include <cstring>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "config/experiment.h"
#include "core/error.h"
#include "core/fs.h"

namespace skillrun {
namespace fs = std::filesystem;

namespace {
constexpr char kMagic[8] = {'S', 'K', 'R', 'C', 'K', 'P', 'T', '1'};

void append_u64(std::string& out, uint64_t v) { out.append(reinterpret_cast<const char*>(&v), sizeof v); }

uint64_t read_u64(const std::string& in, std::size_t offset) {
  uint64_t v;
  std::memcpy(&v, in.data() + offset, sizeof v);
  return v;
}

// Checkpoints of run_dir as (step, path), newest first.
std::vector<std::pair<int64_t, fs::path>> list_checkpoints(const fs::path& run_dir) {
  std::vector<std::pair<int64_t, fs::path>> found;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(run_dir / "checkpoint", ec)) {
    const std::string name = entry.path().filename().string();
    if (name.rfind("ckpt-", 0) != 0 || entry.path().extension() != ".bin") continue;
    try {
      found.emplace_back(std::stoll(name.substr(5, name.size() - 9)), entry.path());
    } catch (const std::exception&) {
      // not one of ours
    }
  }
  std::sort(found.begin(), found.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
  return found;
}
}  // namespace

uint64_t fnv1a64(const std::string& bytes) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : bytes) {
    h ^= c;
    h *= 0x100000001b3ull;
  }
  return h;
}

nlohmann::json checkpoint_identity(const nlohmann::json& resolved_config) {
  nlohmann::json identity = resolved_config;
  if (identity.contains("train") && identity["train"].is_object())
    for (const char* key : {"checkpoint_every", "checkpoint_seconds"}) identity["train"].erase(key);
  return identity;
}

namespace {
// Empty when the identity stored in a checkpoint, resolved again by this build, is `here`;
// else the first difference ("seed (2 in the checkpoint, 1 here)").
std::optional<std::string> identity_difference(const nlohmann::json& stored, const nlohmann::json& here) {
  nlohmann::json resolved;
  try {
    resolved = checkpoint_identity(to_json(parse_experiment(stored)));
  } catch (const std::exception& e) {
    return fmt::format("its config is not one this build reads ({})", e.what());
  }
  if (resolved == here) return std::nullopt;
  return json_difference(resolved, here, "in the checkpoint", "here", 1);
}
}  // namespace

void write_checkpoint(const fs::path& run_dir, const CheckpointState& state, int keep) {
  nlohmann::json header = {{"run_config", state.run_config},
                           {"step", state.step},
                           {"optimizer_steps", state.optimizer_steps},
                           {"wall_seconds", state.wall_seconds},
                           {"names", state.names}};
  nlohmann::json sizes = nlohmann::json::array(), T = nlohmann::json::array();
  for (const auto& b : state.buffers) sizes.push_back(b.size());
  for (const auto& t : state.T_k) T.push_back(t ? nlohmann::json(*t) : nlohmann::json(nullptr));
  header["sizes"] = sizes;
  header["T_k"] = T;
  const std::string header_text = header.dump();

  std::string out(kMagic, sizeof kMagic);
  append_u64(out, header_text.size());
  out += header_text;
  for (const auto& b : state.buffers) out.append(reinterpret_cast<const char*>(b.data()), b.size() * sizeof(float));
  append_u64(out, fnv1a64(out));

  const fs::path dir = run_dir / "checkpoint";
  std::error_code ec;
  fs::create_directory(dir, ec);  // not create_directories: never run_dir
  if (ec) throw RuntimeError(fmt::format("cannot create {}: {}", dir.string(), ec.message()));
  write_file_atomic(dir / fmt::format("ckpt-{:010d}.bin", state.step), out);
  std::size_t kept = 0;
  for (const auto& [step, file] : list_checkpoints(run_dir)) {
    if (step <= state.step && kept < static_cast<std::size_t>(std::max(keep, 1))) {
      ++kept;
      continue;
    }
    fs::remove(file, ec);
  }
}

CheckpointState read_checkpoint(const fs::path& file) {
  const std::string in = read_file(file);
  const std::size_t fixed = sizeof kMagic + 2 * sizeof(uint64_t);
  if (in.size() < fixed || std::memcmp(in.data(), kMagic, sizeof kMagic) != 0)
    throw RuntimeError("not a skillrun checkpoint (bad magic or truncated)");
  const std::string body = in.substr(0, in.size() - sizeof(uint64_t));
  if (fnv1a64(body) != read_u64(in, in.size() - sizeof(uint64_t)))
    throw RuntimeError("checksum mismatch (truncated or corrupted)");
  const uint64_t header_len = read_u64(in, sizeof kMagic);
  if (header_len > body.size() - sizeof kMagic - sizeof(uint64_t)) throw RuntimeError("header length out of range");
  const auto header = parse_json(body.substr(sizeof kMagic + sizeof(uint64_t), header_len), file.string());
  CheckpointState s;
  s.run_config = header.value("run_config", nlohmann::json());
  s.step = header.at("step").get<int64_t>();
  s.optimizer_steps = header.at("optimizer_steps").get<int64_t>();
  s.wall_seconds = header.at("wall_seconds").get<double>();
  s.names = header.at("names").get<std::vector<std::string>>();
  for (const auto& t : header.at("T_k")) s.T_k.push_back(t.is_null() ? std::nullopt : std::optional<int64_t>(t.get<int64_t>()));
  std::size_t offset = sizeof kMagic + sizeof(uint64_t) + header_len;
  for (const auto& size_json : header.at("sizes")) {
    const auto n = size_json.get<std::size_t>();
    if (n > (body.size() - offset) / sizeof(float)) throw RuntimeError("buffer sizes exceed the file");
    std::vector<float>& b = s.buffers.emplace_back(n);
    std::memcpy(b.data(), body.data() + offset, n * sizeof(float));
    offset += n * sizeof(float);
  }
  if (offset != body.size()) throw RuntimeError("trailing bytes after the buffers");
  if (s.names.size() != s.buffers.size()) throw RuntimeError("names and buffers disagree");
  return s;
}

std::optional<CheckpointState> load_latest_checkpoint(const fs::path& run_dir, const nlohmann::json& identity,
                                                      int64_t max_step) {
  for (const auto& [step, file] : list_checkpoints(run_dir)) {
    if (step > max_step) {
      spdlog::warn(
          "skipping checkpoint {}: resuming at step {} would lose the metrics rows that metrics.csv no "
          "longer holds whole (it can continue from step {} at most)",
          file.string(), step, max_step);
      continue;
    }
    try {
      CheckpointState s = read_checkpoint(file);
      if (!s.run_config.is_null())
        if (const auto difference = identity_difference(s.run_config, identity))
          throw RuntimeError(fmt::format("it belongs to another run ({})", *difference));
      if (s.step != step) throw RuntimeError(fmt::format("its header says step {}, its name step {}", s.step, step));
      return s;
    } catch (const std::exception& e) {
      spdlog::warn("skipping checkpoint {}: {}", file.string(), e.what());
    }
  }
  return std::nullopt;
}

bool has_checkpoint_files(const fs::path& run_dir) { return !list_checkpoints(run_dir).empty(); }

}  // namespace skillrun
