// File helpers with the durability a run directory needs: whole-file writes are atomic
// (temp file, fsync, rename), so a killed run never leaves a half-written summary or config.
#pragma once
#include <filesystem>
#include <string>
#include <utility>

#include "core/error.h"

namespace skillrun {

// A file could not be created, written or read: a RuntimeError (exit 1) that keeps the file and
// the errno, so that a caller can tell a full disk (ENOSPC) from other failures.
class FileError : public RuntimeError {
 public:
  FileError(const std::string& message, std::string file, int error_number)
      : RuntimeError(message), file_(std::move(file)), error_number_(error_number) {}
  const std::string& file() const { return file_; }
  int error_number() const { return error_number_; }

 private:
  std::string file_;
  int error_number_ = 0;
};

// Writes `content` to `path` atomically; throws FileError naming the path on failure.
void write_file_atomic(const std::filesystem::path& path, const std::string& content);
// Reads a whole file; throws FileError naming the path on failure.
std::string read_file(const std::filesystem::path& path);

}  // namespace skillrun
