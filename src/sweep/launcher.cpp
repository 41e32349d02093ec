// fork/exec with the stop signals blocked and taken synchronously with sigtimedwait, so a
// signal can neither be lost between a check and a wait nor interrupt the bookkeeping. The
// process may already have threads (OpenBLAS starts its pool at load time), so everything the
// child needs (argv, envp, descriptors) is built before fork and the child only calls
// async-signal-safe functions.
#include "sweep/launcher.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <map>

#include <fmt/format.h>

#include "core/error.h"

extern char** environ;

namespace skillrun {
namespace {

bool is_stop_signal(int sig) { return sig == SIGINT || sig == SIGTERM || sig == SIGUSR1; }

std::string env_name(const std::string& entry) { return entry.substr(0, entry.find('=')); }

// This process's environment with `extra` set on top.
std::vector<std::string> child_environment(const std::vector<std::string>& extra) {
  std::vector<std::string> env;
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string entry = *e;
    bool replaced = false;
    for (const auto& x : extra) replaced = replaced || env_name(x) == env_name(entry);
    if (!replaced) env.push_back(entry);
  }
  env.insert(env.end(), extra.begin(), extra.end());
  return env;
}

std::vector<char*> c_strings(std::vector<std::string>& strings) {
  std::vector<char*> out;
  for (auto& s : strings) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

int open_or_throw(const std::filesystem::path& path, int flags) {
  const int fd = ::open(path.c_str(), flags | O_CLOEXEC, 0644);
  if (fd < 0) throw RuntimeError(fmt::format("cannot open {}: {}", path.string(), std::strerror(errno)));
  return fd;
}

pid_t spawn(ChildSpec spec, const sigset_t& child_mask) {
  std::vector<std::string> env = child_environment(spec.env);
  std::vector<char*> argv = c_strings(spec.argv);
  std::vector<char*> envp = c_strings(env);
  const int in_fd = open_or_throw("/dev/null", O_RDONLY);
  const int out_fd = open_or_throw(spec.output, O_WRONLY | O_CREAT | O_APPEND);
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(in_fd, 0);
    ::dup2(out_fd, 1);
    ::dup2(out_fd, 2);
    for (const int fd : spec.inherit_fds) ::fcntl(fd, F_SETFD, 0);
    ::sigprocmask(SIG_SETMASK, &child_mask, nullptr);
    ::execve(argv[0], argv.data(), envp.data());
    const char msg[] = "skillrun sweep: exec of the run process failed\n";
    (void)!::write(2, msg, sizeof msg - 1);
    ::_exit(127);
  }
  const int fork_errno = errno;
  ::close(in_fd);
  ::close(out_fd);
  if (pid < 0) throw RuntimeError(fmt::format("cannot start a run process: {}", std::strerror(fork_errno)));
  return pid;
}

}  // namespace

int run_children(std::size_t n, int slots, const std::function<std::optional<ChildSpec>(std::size_t, int)>& launch,
                 const std::function<void(std::size_t, const ChildExit&)>& finished) {
  sigset_t watched, previous;
  sigemptyset(&watched);
  for (int sig : {SIGINT, SIGTERM, SIGUSR1, SIGCHLD}) sigaddset(&watched, sig);
  ::sigprocmask(SIG_BLOCK, &watched, &previous);

  struct Running {
    std::size_t job;
    int slot;
  };
  std::map<pid_t, Running> running;
  std::vector<bool> slot_busy(static_cast<std::size_t>(slots), false);
  int stop_signal = 0;

  // Takes one pending signal, waiting up to `wait_ns`. A stop signal typed on the terminal
  // (si_code SI_KERNEL) already reached the children, which share our process group; one sent
  // with kill() (Slurm, a user) reached only us and is forwarded.
  const auto take_signal = [&](long wait_ns) {
    const timespec timeout{0, wait_ns};
    siginfo_t info{};
    const int sig = ::sigtimedwait(&watched, &info, &timeout);
    if (!is_stop_signal(sig)) return;
    if (stop_signal == 0) stop_signal = sig;
    if (info.si_code != SI_KERNEL)
      for (const auto& [pid, r] : running) ::kill(pid, sig);
  };
  const auto reap = [&] {
    int status = 0;
    pid_t pid;
    while ((pid = ::waitpid(-1, &status, WNOHANG)) > 0) {
      const auto it = running.find(pid);
      if (it == running.end()) continue;
      const Running r = it->second;
      running.erase(it);
      slot_busy[static_cast<std::size_t>(r.slot)] = false;
      ChildExit exit;
      if (WIFEXITED(status)) exit.exit_code = WEXITSTATUS(status);
      if (WIFSIGNALED(status)) exit.signal = WTERMSIG(status);
      finished(r.job, exit);
    }
  };

  try {
    std::size_t next = 0;
    while (true) {
      while (stop_signal == 0 && next < n && running.size() < static_cast<std::size_t>(slots)) {
        int slot = 0;
        while (slot_busy[static_cast<std::size_t>(slot)]) ++slot;
        if (auto spec = launch(next, slot)) {
          running[spawn(std::move(*spec), previous)] = {next, slot};
          slot_busy[static_cast<std::size_t>(slot)] = true;
        }
        ++next;
        take_signal(0);  // a stop signal during the launch prevents the next one
      }
      if (running.empty()) break;
      take_signal(200'000'000);  // SIGCHLD ends the wait early; the timeout is a safety net
      reap();
    }
  } catch (...) {
    // Leave no child behind unwaited: ask them to stop, as a signal would, and wait.
    for (const auto& [pid, r] : running) ::kill(pid, SIGTERM);
    for (const auto& [pid, r] : running) ::waitpid(pid, nullptr, 0);
    ::sigprocmask(SIG_SETMASK, &previous, nullptr);
    throw;
  }
  // A stop signal left pending would act (terminate us) once unblocked: take it as a request.
  sigset_t pending;
  while (::sigpending(&pending) == 0 &&
         (sigismember(&pending, SIGINT) || sigismember(&pending, SIGTERM) || sigismember(&pending, SIGUSR1) ||
          sigismember(&pending, SIGCHLD)))
    take_signal(0);
  ::sigprocmask(SIG_SETMASK, &previous, nullptr);
  return stop_signal;
}

}  // namespace skillrun
