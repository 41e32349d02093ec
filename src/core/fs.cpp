// POSIX implementation of the atomic write: the temp file sits beside the target so rename()
// stays within one filesystem; the directory is fsynced so the rename itself is durable.
#include "core/fs.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "core/error.h"

namespace skillrun {
namespace {
[[noreturn]] void fail(const std::string& what, const std::filesystem::path& path) {
  const int err = errno;
  throw FileError(what + " " + path.string() + ": " + std::strerror(err), path.string(), err);
}

// fail(), after removing the temp file, so a failed write (disk full) leaves no stale *.tmp.
[[noreturn]] void fail_removing(const std::string& what, const std::filesystem::path& path,
                                const std::filesystem::path& tmp) {
  const int err = errno;
  ::unlink(tmp.c_str());
  errno = err;
  fail(what, path);
}
}  // namespace

void write_file_atomic(const std::filesystem::path& path, const std::string& content) {
  const std::filesystem::path tmp = path.string() + ".tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) fail("cannot create", tmp);
  std::size_t written = 0;
  while (written < content.size()) {
    const ssize_t n = ::write(fd, content.data() + written, content.size() - written);
    if (n < 0) {
      if (errno == EINTR) continue;
      ::close(fd);
      fail_removing("cannot write", tmp, tmp);
    }
    written += static_cast<std::size_t>(n);
  }
  if (::fsync(fd) != 0) {
    ::close(fd);
    fail_removing("cannot fsync", tmp, tmp);
  }
  if (::close(fd) != 0) fail_removing("cannot close", tmp, tmp);
  if (::rename(tmp.c_str(), path.c_str()) != 0) fail_removing("cannot rename onto", path, tmp);
  const std::filesystem::path dir = path.has_parent_path() ? path.parent_path() : ".";
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);  // best effort: some filesystems refuse fsync on directories
    ::close(dfd);
  }
}

std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("cannot read", path);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace skillrun
