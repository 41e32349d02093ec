// Exclusive advisory locks on files (flock): a run directory is written by one process at a
// time. A lock is released when the last descriptor sharing it closes, also on kill -9, so a
// dead holder never leaves a stale lock behind.
#pragma once
#include <filesystem>
#include <optional>
#include <string>

namespace skillrun {

class FileLock {
 public:
  // Waits for the lock.
  static FileLock acquire(const std::filesystem::path& file);
  // Empty when another process holds it.
  static std::optional<FileLock> try_acquire(const std::filesystem::path& file);
  // A shared lock: any number of holders at once, none while someone holds it exclusively (a
  // Slurm array's tasks share their sweep's lock, a whole sweep holds it alone). Empty when
  // another process holds it exclusively.
  static std::optional<FileLock> try_acquire_shared(const std::filesystem::path& file);
  // The lock on `file` that this process inherited as descriptor `fd` from a parent that holds
  // it (a sweep passes its run lock to the run it starts): empty unless fd is open on that very
  // file and the lock is ours (flock on the shared open file description succeeds).
  static std::optional<FileLock> adopt(int fd, const std::filesystem::path& file);
  FileLock(FileLock&& other) noexcept : fd_(other.fd_) { other.fd_ = -1; }
  FileLock& operator=(FileLock&& other) noexcept;  // releases the lock it held
  FileLock(const FileLock&) = delete;
  ~FileLock();
  int fd() const { return fd_; }  // opened O_CLOEXEC: the launcher passes it to one child only
  // Replaces the file's content with `note` (who holds it: "pid 1234"), best effort.
  void describe_holder(const std::string& note) const;

 private:
  explicit FileLock(int fd) : fd_(fd) {}
  static std::optional<FileLock> lock(const std::filesystem::path& file, bool wait, bool shared = false);
  int fd_ = -1;
};

// What a lock file says of its holder ("pid 1234"), or empty.
std::string lock_holder_note(const std::filesystem::path& file);

}  // namespace skillrun
