// File helpers with the durability a run directory needs: whole-file writes are atomic
// (temp file, fsync, rename), so a killed run never leaves a half-written summary or config.
#pragma once
#include <filesystem>
#include <string>

namespace skillrun {

// Writes `content` to `path` atomically; throws RuntimeError naming the path on failure.
void write_file_atomic(const std::filesystem::path& path, const std::string& content);
// Reads a whole file; throws RuntimeError naming the path on failure.
std::string read_file(const std::filesystem::path& path);

}  // namespace skillrun
