// Run directory writer. metrics.csv rows use %.9g so every float loss survives a round trip.
#include "io/run_dir.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <charconv>
#include <cstring>
#include <ctime>
#include <set>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "config/experiment.h"
#include "core/error.h"
#include "core/fs.h"
#include "core/strings.h"
#include "core/version.h"

namespace skillrun {

const char* to_string(RunStatus s) {
  switch (s) {
    case RunStatus::Running: return "running";
    case RunStatus::Converged: return "converged";
    case RunStatus::MaxSteps: return "max_steps";
    case RunStatus::Diverged: return "diverged";
    case RunStatus::Interrupted: return "interrupted";
    case RunStatus::Failed:
      return "failed";
  }
  return "unknown";
}

namespace {
namespace fs = std::filesystem;

// What a run process may leave in its directory besides the files that make it a run (and what
// a sweep writes there before the run starts).
bool is_run_bookkeeping(const std::string& name) {
  return name == kRunLockFile || name == "run.log" || name == "output.log" || name == "failed.json" ||
         name.ends_with(".tmp");  // left by a write_file_atomic that a kill interrupted
}

// Removes the *.tmp files of writes that a kill interrupted (a failed write removes its own):
// in the directory and in checkpoint/, where each would be a whole model. Under the lock, no
// write is in flight.
void remove_stale_temp_files(const fs::path& dir) {
  std::error_code ec;
  for (const fs::path& d : {dir, dir / "checkpoint"})
    for (auto it = fs::directory_iterator(d, ec); !ec && it != fs::directory_iterator(); it.increment(ec))
      if (it->path().extension() == ".tmp" && it->is_regular_file(ec)) {
        spdlog::warn("removing {}, left by an interrupted write", it->path().string());
        fs::remove(it->path(), ec);
      }
}

// Refuses what `mode` must not touch; reads only, so it can run before and after the lock.
void check_run_directory(const fs::path& dir, RunDirMode mode) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) {
    if (fs::exists(dir, ec)) throw UsageError(fmt::format("{} exists and is not a directory", dir.string()));
    return;
  }
  const bool run = holds_run(dir);
  if (mode == RunDirMode::Fresh && run)
    throw UsageError(
        fmt::format("{} already holds a run; choose another --out (nothing was overwritten)", dir.string()));
  if (run) return;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (is_run_bookkeeping(name)) continue;
    throw UsageError(
        fmt::format("{} is not empty and holds no run (it has {}); refusing to write a run into it "
                    "(nothing was changed): choose an empty or new --out",
                    dir.string(), name));
  }
}

// The run lock of dir: the one a parent sweep passed down (kRunLockFdVariable), else our own.
FileLock lock_run_directory(const fs::path& dir) {
  const fs::path file = dir / kRunLockFile;
  std::optional<FileLock> lock;
  std::string parent;  // the note of the process that passed the lock down
  if (const char* inherited = std::getenv(kRunLockFdVariable)) {
    // A pack's process holds one lock per run: the one whose file is this directory's.
    for (const std::string& item : split(inherited, ',')) {
      const auto fd = parse_int(item);
      if (fd && *fd >= 0 && *fd < (1 << 20)) lock = FileLock::adopt(static_cast<int>(*fd), file);
      if (lock) break;
    }
    if (lock) parent = lock_holder_note(file);
  }
  if (!lock) lock = FileLock::try_acquire(file);
  if (!lock) {
    const std::string holder = lock_holder_note(file);
    throw UsageError(
        fmt::format("{} is being written by another skillrun process{}; nothing was changed. "
                    "Wait for it to end (or stop it), then run again",
                    dir.string(), holder.empty() ? "" : " (" + holder + ")"));
  }
  lock->describe_holder(parent.empty() ? fmt::format("pid {}", ::getpid())
                                       : fmt::format("pid {}, started by {}", ::getpid(), parent));
  return std::move(*lock);
}

}  // namespace

RunDirectory::RunDirectory(std::filesystem::path path, RunDirMode mode) : path_(std::move(path)) {
  // Checked before anything is created, then again under the lock: another process may have
  // started a run here in between.
  check_run_directory(path_, mode);
  std::error_code ec;
  fs::create_directories(path_, ec);
  if (ec) throw RuntimeError(fmt::format("cannot create run directory {}: {}", path_.string(), ec.message()));
  lock_.emplace(lock_run_directory(path_));
  check_run_directory(path_, mode);
  remove_stale_temp_files(path_);
}

void RunDirectory::check_in_place() const {
  struct stat held{}, named{};
  if (lock_ && ::fstat(lock_->fd(), &held) == 0 && ::stat((path_ / kRunLockFile).c_str(), &named) == 0 &&
      held.st_dev == named.st_dev && held.st_ino == named.st_ino)
    return;
  // Also while an rm -rf is under way: the directory is still there, its run.lock no longer.
  throw RuntimeError(
      fmt::format("run directory {} was deleted, moved or replaced while the run trained (its {} is no longer the "
                  "file this run locked); the run stops and writes nothing more there (nothing is recreated: run "
                  "it again to redo it)",
                  path_.string(), kRunLockFile));
}

RunDirectory::~RunDirectory() {
  if (metrics_) std::fclose(metrics_);
}

void RunDirectory::write_config(const nlohmann::json& resolved) {
  guarded_write([&] { write_file_atomic(path_ / "config.json", resolved.dump(2) + "\n"); });
}

void RunDirectory::open_metrics(int n_tasks, std::optional<int64_t> keep_through) {
  std::vector<std::string> columns = {"train_loss", "mean_loss"};
  for (int k = 0; k < n_tasks; ++k) columns.push_back(fmt::format("loss_{}", k));
  for (int k = 0; k < n_tasks; ++k) columns.push_back(fmt::format("acc_{}", k));
  open_metrics_columns(columns, keep_through);
}

namespace {

struct WholeRow {
  int64_t step;
  std::size_t end;  // offset just past its newline
};

// (step, wall_s) of a metrics.csv data line (without its newline) that a run wrote whole: the
// header's number of fields, a step >= 0, numbers (train_loss, the third, may be empty).
std::optional<std::pair<int64_t, double>> parse_metrics_line(std::string_view line, std::size_t n_fields) {
  const auto fields = split(line, ',');
  if (fields.size() != n_fields) return std::nullopt;
  const auto step = parse_int(fields[0]);
  if (!step || *step < 0) return std::nullopt;
  double wall = 0;
  for (std::size_t i = 1; i < fields.size(); ++i) {
    if (i == 2 && fields[i].empty()) continue;
    const auto v = parse_double(fields[i]);
    if (!v) return std::nullopt;
    if (i == 1) wall = *v;
  }
  return std::pair{*step, wall};
}

// The rows of metrics.csv text that a run wrote whole (parse_metrics_line), with a step that
// grows. Stops at a torn last line (a killed run) or at the first malformed line, which is named
// (file:line) when `warn`.
std::vector<WholeRow> whole_metrics_rows(const std::string& text, const fs::path& file, bool warn) {
  std::vector<WholeRow> rows;
  std::size_t pos = text.find('\n');
  if (pos == std::string::npos) return rows;
  const std::size_t n_fields = split(std::string_view(text).substr(0, pos), ',').size();
  ++pos;
  for (int line = 2; pos < text.size(); ++line) {
    const std::size_t end = text.find('\n', pos);
    if (end == std::string::npos) break;  // torn: the run was killed while writing it
    const auto parsed = parse_metrics_line(std::string_view(text).substr(pos, end - pos), n_fields);
    const bool ok = parsed && (rows.empty() || parsed->first > rows.back().step);
    if (!ok) {
      if (warn)
        spdlog::warn("{}:{}: malformed row; the rows from there on are dropped and computed again", file.string(),
                     line);
      break;
    }
    rows.push_back({parsed->first, end + 1});
    pos = end + 1;
  }
  return rows;
}

}  // namespace

std::optional<int64_t> last_whole_metrics_step(const fs::path& run_dir, bool warn) {
  const fs::path file = run_dir / "metrics.csv";
  std::error_code ec;
  if (!fs::exists(file, ec)) return std::nullopt;
  const auto rows = whole_metrics_rows(read_file(file), file, warn);
  return rows.empty() ? std::nullopt : std::optional<int64_t>(rows.back().step);
}

namespace {

// A file read by offset, for the tail of metrics.csv: opened without blocking (a FIFO in its place
// must not hang a reader), and only a regular file. Errors name the file.
class OffsetReader {
 public:
  // Empty `fd_` (no file) when it does not exist.
  explicit OffsetReader(fs::path file) : file_(std::move(file)) {
    fd_ = ::open(file_.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd_ < 0) {
      if (errno == ENOENT) return;
      fail();
    }
    struct stat st {};
    if (::fstat(fd_, &st) != 0) fail();
    if (!S_ISREG(st.st_mode)) throw RuntimeError(fmt::format("cannot read {}: not a regular file", file_.string()));
    size_ = static_cast<std::size_t>(st.st_size);
  }
  ~OffsetReader() {
    if (fd_ >= 0) ::close(fd_);
  }
  OffsetReader(const OffsetReader&) = delete;
  OffsetReader& operator=(const OffsetReader&) = delete;

  bool exists() const { return fd_ >= 0; }
  std::size_t size() const { return size_; }
  // The n bytes at offset (fewer only at the end of a file that shrank).
  std::string read(std::size_t offset, std::size_t n) const {
    std::string out(n, '\0');
    std::size_t got = 0;
    while (got < n) {
      const ssize_t r = ::pread(fd_, out.data() + got, n - got, static_cast<off_t>(offset + got));
      if (r < 0 && errno == EINTR) continue;
      if (r < 0) fail();
      if (r == 0) break;
      got += static_cast<std::size_t>(r);
    }
    out.resize(got);
    return out;
  }

 private:
  [[noreturn]] void fail() const {
    throw RuntimeError(fmt::format("cannot read {}: {}", file_.string(), std::strerror(errno)));
  }
  fs::path file_;
  int fd_ = -1;
  std::size_t size_ = 0;
};

}  // namespace

std::vector<std::pair<int64_t, double>> last_metrics_rows(const fs::path& run_dir, std::size_t count) {
  // A line longer than this (a header of ~200 000 tasks) is taken for garbage, not read on.
  constexpr std::size_t kMaxLine = std::size_t{4} << 20, kBlock = std::size_t{64} << 10;
  const OffsetReader file(run_dir / "metrics.csv");
  if (!file.exists() || count == 0) return {};
  std::string head;
  std::size_t header_end = std::string::npos;
  while (header_end == std::string::npos && head.size() < std::min(file.size(), kMaxLine)) {
    const std::string block = file.read(head.size(), std::min(kBlock, file.size() - head.size()));
    if (block.empty()) break;
    head += block;
    header_end = head.find('\n');
  }
  if (header_end == std::string::npos) return {};
  const std::size_t n_fields = split(std::string_view(head).substr(0, header_end), ',').size();
  const std::size_t data_begin = header_end + 1;

  // Back from the end, blocks that double, until `count` whole lines (count + 1 newlines) are in.
  std::string tail;
  std::size_t begin = std::max(file.size(), data_begin);
  const std::size_t max_tail = count * kMaxLine;
  while (begin > data_begin && tail.size() < max_tail &&
         static_cast<std::size_t>(std::count(tail.begin(), tail.end(), '\n')) <= count) {
    const std::size_t n = std::min({begin - data_begin, std::max(kBlock, tail.size()), max_tail - tail.size()});
    begin -= n;
    tail.insert(0, file.read(begin, n));
  }
  const std::size_t last_newline = tail.rfind('\n');
  if (last_newline == std::string::npos) return {};
  // The lines from `first` to the last newline are whole (what follows it is torn); before
  // `first` lies part of a line, unless the tail reaches back to the header.
  std::size_t first = 0;
  if (begin > data_begin) first = tail.find('\n') + 1;
  std::vector<std::pair<int64_t, double>> rows;  // newest first
  for (std::size_t end = last_newline; rows.size() < count && end != std::string::npos && end >= first;) {
    const std::size_t start = end > first ? tail.rfind('\n', end - 1) : std::string::npos;
    const std::size_t from = start == std::string::npos || start < first ? first : start + 1;
    const auto parsed = parse_metrics_line(std::string_view(tail).substr(from, end - from), n_fields);
    if (!parsed || (!rows.empty() && parsed->first >= rows.back().first)) break;
    rows.push_back(*parsed);
    if (from == first) break;
    end = from - 1;
  }
  std::reverse(rows.begin(), rows.end());
  return rows;
}

namespace {
// The holder of an flock on the file with this device and inode, as /proc/locks lists it
// ("1: FLOCK  ADVISORY  WRITE 4242 08:01:1234 0 EOF"): its pid, 0 when it is listed with a
// pid that this process cannot see (another pid namespace), empty when it is not listed; and no
// answer at all when /proc/locks cannot be read. Reading it takes no lock, so a sweep or a
// resume that locks the run at the same moment is never turned away.
std::optional<std::optional<long>> flock_holder(const struct stat& st) {
  std::FILE* f = std::fopen("/proc/locks", "r");
  if (f == nullptr) return std::nullopt;
  const std::string id = fmt::format("{:02x}:{:02x}:{}", major(st.st_dev), minor(st.st_dev), st.st_ino);
  std::optional<long> holder;
  char line[512];
  while (!holder && std::fgets(line, sizeof line, f) != nullptr) {
    const std::string text(line);
    if (text.find("FLOCK") == std::string::npos || text.find("->") != std::string::npos) continue;  // "->": waits
    std::vector<std::string> fields;
    for (std::string& field : split(text, ' '))
      if (!field.empty()) fields.push_back(std::move(field));
    for (std::size_t i = 1; i < fields.size(); ++i)
      if (fields[i] == id) holder = std::max<long>(0, parse_int(fields[i - 1]).value_or(0));
  }
  std::fclose(f);
  return holder;
}

// Whether `note` names process `pid` ("pid 12, started by pid 10, ...": 12 and 10).
bool names_pid(const std::string& note, long pid) {
  const std::string word = fmt::format("pid {}", pid);
  for (std::size_t at = note.find(word); at != std::string::npos; at = note.find(word, at + 1)) {
    const std::size_t end = at + word.size();
    if (end == note.size() || !std::isdigit(static_cast<unsigned char>(note[end]))) return true;
  }
  return false;
}
}  // namespace

std::optional<std::string> run_writer(const fs::path& dir) {
  const fs::path file = dir / kRunLockFile;
  struct stat st{};
  if (::stat(file.c_str(), &st) != 0) return std::nullopt;
  std::optional<std::optional<long>> listed = flock_holder(st);
  std::optional<long> pid;  // the holder, when known (0: listed, pid unknown)
  if (listed) {
    if (!*listed) return std::nullopt;
    pid = **listed;
  } else {  // no /proc/locks: probe with a shared lock, dropped at once
    const int fd = ::open(file.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) return std::nullopt;
    const bool held = ::flock(fd, LOCK_SH | LOCK_NB) != 0 && errno == EWOULDBLOCK;
    ::close(fd);
    if (!held) return std::nullopt;
  }
  const std::string note = lock_holder_note(file);
  if (!pid || *pid == 0) return note.empty() ? std::string("a skillrun process") : note;
  if (names_pid(note, *pid)) return note;
  // Held by a process the note does not name: the note is a dead writer's, or made up.
  return note.empty() ? fmt::format("pid {}", *pid) : fmt::format("pid {}; run.lock names another: {}", *pid, note);
}

void walk_run_tree(const fs::path& root, const std::function<bool(const fs::path&)>& visit,
                   const std::function<void(const fs::path&, const std::string&)>& unreadable) {
  struct Entry {
    fs::path dir;
    bool link = false;  // visited, never entered
  };
  std::vector<Entry> pending{{root}};  // a stack: the next directory last
  while (!pending.empty()) {
    const Entry next = std::move(pending.back());
    pending.pop_back();
    if (!visit(next.dir) || next.link) continue;
    std::vector<Entry> children;
    std::error_code ec;
    for (fs::directory_iterator it(next.dir, ec), end; !ec && it != end; it.increment(ec)) {
      std::error_code kind;
      if (it->is_directory(kind)) children.push_back({it->path(), it->is_symlink(kind)});
    }
    if (ec) unreadable(next.dir, ec.message());  // the directories listed before the error are walked
    std::sort(children.begin(), children.end(), [](const Entry& a, const Entry& b) { return a.dir > b.dir; });
    for (Entry& child : children) pending.push_back(std::move(child));
  }
}

void RunDirectory::open_metrics_columns(const std::vector<std::string>& columns, std::optional<int64_t> keep_through) {
  guarded_write([&] { open_metrics_file(columns, keep_through); });
}

void RunDirectory::open_metrics_file(const std::vector<std::string>& columns, std::optional<int64_t> keep_through) {
  const auto file = path_ / "metrics.csv";
  std::string content = "step,wall_s";
  for (const std::string& c : columns) content += "," + c;
  content += "\n";
  if (keep_through && fs::exists(file)) {
    const std::string old = read_file(file);
    if (old.compare(0, content.size(), content) != 0)
      throw RuntimeError(fmt::format("{}: header does not match this run's columns", file.string()));
    // Keep the whole rows whose step is <= keep_through; the resumed run writes the rest again.
    std::size_t kept = content.size();
    for (const WholeRow& row : whole_metrics_rows(old, file, /*warn=*/false)) {
      if (row.step > *keep_through) break;
      kept = row.end;
    }
    content.assign(old, 0, kept);
  }
  write_file_atomic(file, content);
  metrics_ = std::fopen(file.c_str(), "a");
  if (!metrics_) throw RuntimeError(fmt::format("cannot open {}: {}", file.string(), std::strerror(errno)));
}

void RunDirectory::append_metrics(const MetricsRow& row) {
  fmt::memory_buffer line;
  fmt::format_to(std::back_inserter(line), "{},{:.3f},", row.step, row.wall_seconds);
  if (row.train_loss_bits) fmt::format_to(std::back_inserter(line), "{:.9g}", *row.train_loss_bits);
  fmt::format_to(std::back_inserter(line), ",{:.9g}", row.mean_loss_bits);
  for (double v : row.loss_bits) fmt::format_to(std::back_inserter(line), ",{:.9g}", v);
  for (double v : row.accuracy) fmt::format_to(std::back_inserter(line), ",{:.9g}", v);
  write_metrics_line(line);
}

void RunDirectory::append_metrics_values(int64_t step, double wall_seconds, const std::vector<double>& values) {
  fmt::memory_buffer line;
  fmt::format_to(std::back_inserter(line), "{},{:.3f}", step, wall_seconds);
  for (double v : values) fmt::format_to(std::back_inserter(line), ",{:.9g}", v);
  write_metrics_line(line);
}

void RunDirectory::write_metrics_line(fmt::memory_buffer& line) {
  line.push_back('\n');
  check_in_place();  // the open file would take rows after its directory is gone, unseen
  if (std::fwrite(line.data(), 1, line.size(), metrics_) != line.size() || std::fflush(metrics_) != 0)
    throw RuntimeError(fmt::format("cannot write {}: {}", (path_ / "metrics.csv").string(), std::strerror(errno)));
}

void RunDirectory::open_table(const std::string& file, const std::string& header,
                              std::optional<int64_t> keep_through) {
  guarded_write([&] {
    const fs::path path = path_ / file;
    std::string content = header + "\n";
    if (keep_through && fs::exists(path)) {
      const std::string old = read_file(path);
      if (old.compare(0, content.size(), content) == 0) {
        std::size_t pos = content.size();
        while (pos < old.size()) {
          const std::size_t end = old.find('\n', pos);
          if (end == std::string::npos) break;  // a torn last line
          int64_t step = 0;
          const auto [ptr, ec] = std::from_chars(old.data() + pos, old.data() + end, step);
          if (ec != std::errc() || ptr == old.data() + end || *ptr != ',' || step > *keep_through) break;
          content.append(old, pos, end + 1 - pos);
          pos = end + 1;
        }
      }
    }
    write_file_atomic(path, content);
  });
}

void RunDirectory::append_table(const std::string& file, const std::string& lines) {
  guarded_write([&] {
    const fs::path path = path_ / file;
    std::FILE* f = std::fopen(path.c_str(), "a");
    if (!f) throw RuntimeError(fmt::format("cannot open {}: {}", path.string(), std::strerror(errno)));
    const bool ok = std::fwrite(lines.data(), 1, lines.size(), f) == lines.size();
    if (std::fclose(f) != 0 || !ok) throw RuntimeError(fmt::format("cannot write {}: {}", path.string(), std::strerror(errno)));
  });
}

void RunDirectory::write_summary(const RunSummary& s) {
  nlohmann::json j = {
      {"status", to_string(s.status)}, {"steps", s.steps},     {"seconds", s.seconds}, {"device", s.device},
      {"git_commit", git_commit()},    {"version", version()}, {"message", s.message},
  };
  if (!s.T_k.empty()) {
    nlohmann::json T = nlohmann::json::array();
    for (const auto& t : s.T_k) T.push_back(t ? nlohmann::json(*t) : nlohmann::json(nullptr));
    j["T_k"] = T;
    j["tau_bits"] = s.tau_bits;
  }
  for (const auto& [key, value] : s.extra.items()) j[key] = value;
  guarded_write([&] { write_file_atomic(path_ / "summary.json", j.dump(2) + "\n"); });
}

void RunDirectory::record_failure(const std::string& message) noexcept {
  try {
    check_in_place();  // a directory deleted or replaced meanwhile gets nothing (nor is recreated)
    // Keeps what the last summary recorded; none yet (or unreadable): the failure alone.
    nlohmann::json j = read_summary(path_).value_or(nlohmann::json::object());
    j["status"] = to_string(RunStatus::Failed);
    j["message"] = message;
    j["git_commit"] = git_commit();
    j["version"] = version();
    write_file_atomic(path_ / "summary.json", j.dump(2) + "\n");
  } catch (const std::exception& e) {
    if (message != e.what())  // else the failure was that very error, already reported
      spdlog::error("could not record the failure in {}: {}", (path_ / "summary.json").string(), e.what());
  }
}

bool holds_run(const std::filesystem::path& dir) {
  std::error_code ec;
  for (const char* name : {"config.json", "metrics.csv", "summary.json", "checkpoint"})
    if (fs::exists(dir / name, ec)) return true;
  return false;
}

std::optional<nlohmann::json> read_summary(const std::filesystem::path& run_dir) {
  const std::filesystem::path file = run_dir / "summary.json";
  std::error_code ec;
  // Not a regular file (a FIFO would block the reader forever): unreadable.
  if (!std::filesystem::is_regular_file(file, ec)) return std::nullopt;
  try {
    nlohmann::json j = parse_json(read_file(file), file.string());
    if (j.is_object()) return j;
  } catch (const std::exception&) {
    // unreadable: as absent, for the callers
  }
  return std::nullopt;
}

std::optional<std::string> status_of(const nlohmann::json& summary) {
  const auto it = summary.find("status");
  if (it == summary.end() || !it->is_string()) return std::nullopt;
  return it->get<std::string>();
}

std::optional<std::string> recorded_status(const std::filesystem::path& run_dir) {
  const auto summary = read_summary(run_dir);
  return summary ? status_of(*summary) : std::nullopt;
}

bool is_finished_status(const std::string& status) {
  return status == to_string(RunStatus::Converged) || status == to_string(RunStatus::MaxSteps) ||
         status == to_string(RunStatus::Diverged);
}

namespace {
namespace fs = std::filesystem;
using json = nlohmann::json;
}  // namespace

std::optional<json> resolved_config_of(const fs::path& run_dir) {
  const fs::path file = run_dir / "config.json";
  std::error_code ec;
  if (!fs::exists(file, ec)) return std::nullopt;
  return to_json(parse_experiment(read_json_file(file.string())));
}

std::optional<std::string> config_difference(const fs::path& dir, const json& resolved, std::string_view here) {
  json existing;
  try {
    const auto stored = resolved_config_of(dir);
    if (!stored) return std::nullopt;
    existing = *stored;
  } catch (const std::exception& e) {
    return fmt::format("it is not a valid config ({})", e.what());
  }
  if (existing == resolved) return std::nullopt;
  return json_difference(existing, resolved, "in the directory", here);
}

std::filesystem::path default_run_path(const std::string& name) {
  const std::time_t now = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  std::tm tm{};
  localtime_r(&now, &tm);
  char stamp[32];
  std::strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", &tm);
  std::filesystem::path base = std::filesystem::path("runs") / fmt::format("{}-{}", name, stamp);
  std::filesystem::path candidate = base;
  for (int n = 2; std::filesystem::exists(candidate); ++n) candidate = base.string() + "-" + std::to_string(n);
  return candidate;
}

}  // namespace skillrun
