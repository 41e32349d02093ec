// Shared by the CLI tests: run a shell command with stdout and stderr captured to files in a
// per-test temp directory, quote arguments for sh, read files whole.
#pragma once
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace skillrun_test {

namespace fs = std::filesystem;

struct Result {
  int status = -1;  // exit status, or -1 when the process did not exit normally
  std::string out;
  std::string err;
};

inline std::string shell_quote(const std::string& s) {
  std::string q = "'";
  for (char ch : s) q += (ch == '\'') ? std::string("'\\''") : std::string(1, ch);
  return q + "'";
}

inline std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// Starts the skillrun executable under test with `args` in the background: stdout to
// /dev/null, stderr to `stderr_file` (inherited when empty). Returns its pid.
inline pid_t spawn_skillrun(std::vector<std::string> args, const fs::path& stderr_file = {}) {
  args.insert(args.begin(), SKILLRUN_BIN);
  const pid_t pid = fork();
  if (pid == 0) {
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    if (!std::freopen("/dev/null", "w", stdout)) _exit(127);
    if (!stderr_file.empty() && !std::freopen(stderr_file.c_str(), "w", stderr)) _exit(127);
    execv(argv[0], argv.data());
    _exit(127);
  }
  return pid;
}

// Whether `text` holds `part`; the failure message shows both.
inline testing::AssertionResult contains(const std::string& text, const std::string& part) {
  if (text.find(part) != std::string::npos) return testing::AssertionSuccess();
  return testing::AssertionFailure() << "\"" << text << "\"\ndoes not contain\n\"" << part << "\"";
}

// The exit status of a spawned process; 128 + the signal when a signal killed it.
inline int wait_exit(pid_t pid) {
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFSIGNALED(status) ? 128 + WTERMSIG(status) : WEXITSTATUS(status);
}

// The lines of a metrics.csv without the wall_s column: what an interrupted and resumed run
// must reproduce bit for bit.
inline std::vector<std::string> deterministic_rows(const fs::path& metrics) {
  std::vector<std::string> rows;
  std::istringstream in(slurp(metrics));
  for (std::string line; std::getline(in, line);) {
    const auto a = line.find(','), b = line.find(',', a + 1);
    rows.push_back(a == std::string::npos || b == std::string::npos ? line : line.substr(0, a) + line.substr(b));
  }
  return rows;
}

// A fixture with its own empty temp directory, removed afterwards, and command runners.
class CliTest : public testing::Test {
 protected:
  void SetUp() override {
    const auto* info = testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::temp_directory_path() / ("skillrun_" + std::string(info->test_suite_name()) + "_" +
                                        std::string(info->name()) + "_" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  // Runs `command` through sh; stdout and stderr go to separate files so either can be parsed.
  Result sh(const std::string& command) {
    const fs::path out = dir_ / "stdout.txt", err = dir_ / "stderr.txt";
    std::string cmd = command;
    // Appended piece by piece: GCC 12 warns (-Wrestrict, falsely) on "literal" + temporary.
    cmd.append(" >").append(shell_quote(out.string()));
    cmd.append(" 2>").append(shell_quote(err.string()));
    const int raw = std::system(cmd.c_str());
    return {(raw != -1 && WIFEXITED(raw)) ? WEXITSTATUS(raw) : -1, slurp(out), slurp(err)};
  }

  // Runs the skillrun executable under test with `args`.
  Result skillrun(const std::vector<std::string>& args) {
    std::string cmd = shell_quote(SKILLRUN_BIN);
    for (const auto& a : args) cmd.append(" ").append(shell_quote(a));
    return sh(cmd);
  }

  fs::path dir_;
};

}  // namespace skillrun_test
