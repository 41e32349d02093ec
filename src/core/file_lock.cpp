// POSIX flock(2) locks. flock, unlike fcntl locks, belongs to the open file description, so a
// child that inherits the descriptor shares the parent's lock instead of conflicting with it.
#include "core/file_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include <fmt/format.h>

#include "core/error.h"
#include "core/fs.h"

namespace skillrun {

std::optional<FileLock> FileLock::lock(const std::filesystem::path& file, bool wait, bool shared) {
  const int fd = ::open(file.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) throw RuntimeError(fmt::format("cannot open {}: {}", file.string(), std::strerror(errno)));
  int rc;
  const int kind = shared ? LOCK_SH : LOCK_EX;
  do rc = ::flock(fd, wait ? kind : kind | LOCK_NB);
  while (rc != 0 && errno == EINTR);
  if (rc != 0) {
    const int err = errno;
    ::close(fd);
    if (err == EWOULDBLOCK && !wait) return std::nullopt;
    throw RuntimeError(fmt::format("cannot lock {}: {}", file.string(), std::strerror(err)));
  }
  return FileLock(fd);
}

FileLock FileLock::acquire(const std::filesystem::path& file) { return std::move(*lock(file, true)); }

std::optional<FileLock> FileLock::try_acquire(const std::filesystem::path& file) { return lock(file, false); }

std::optional<FileLock> FileLock::try_acquire_shared(const std::filesystem::path& file) {
  return lock(file, false, true);
}

std::optional<FileLock> FileLock::adopt(int fd, const std::filesystem::path& file) {
  struct stat held {
  }, named{};
  if (fd < 0 || ::fstat(fd, &held) != 0 || ::stat(file.c_str(), &named) != 0) return std::nullopt;
  if (held.st_dev != named.st_dev || held.st_ino != named.st_ino) return std::nullopt;
  // Succeeds at once on the description our parent locked; fails if the lock is someone else's.
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) return std::nullopt;
  ::fcntl(fd, F_SETFD, FD_CLOEXEC);
  return FileLock(fd);
}

void FileLock::describe_holder(const std::string& note) const {
  if (fd_ < 0 || ::ftruncate(fd_, 0) != 0) return;
  const std::string line = note + "\n";
  [[maybe_unused]] const ssize_t n = ::pwrite(fd_, line.data(), line.size(), 0);
}

FileLock& FileLock::operator=(FileLock&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = std::exchange(other.fd_, -1);
  }
  return *this;
}

FileLock::~FileLock() {
  if (fd_ >= 0) ::close(fd_);
}

std::string lock_holder_note(const std::filesystem::path& file) {
  try {
    std::string text = read_file(file);
    while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
    return text.size() > 200 ? std::string() : text;
  } catch (const std::exception&) {
    return "";
  }
}

}  // namespace skillrun
