// Smoke tests of the built executable that need no config: help, version, bad usage.
#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <string>
#include <sys/wait.h>

namespace {

struct Result {
  int exit_code;
  std::string output;
};

Result run_skillrun(const std::string& args) {
  const std::string cmd = std::string(SKILLRUN_BIN) + " " + args + " 2>&1";
  FILE* pipe = popen(cmd.c_str(), "r");
  std::string out;
  std::array<char, 4096> buf{};
  while (std::fgets(buf.data(), buf.size(), pipe)) out += buf.data();
  const int status = pclose(pipe);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

TEST(CliSmoke, HelpListsTheSubcommands) {
  const Result r = run_skillrun("--help");
  EXPECT_EQ(r.exit_code, 0);
  for (const char* sub : {"run", "validate", "bench"}) EXPECT_NE(r.output.find(sub), std::string::npos) << sub;
}

TEST(CliSmoke, NoSubcommandIsAUsageError) { EXPECT_EQ(run_skillrun("").exit_code, 2); }

TEST(CliSmoke, UnknownFlagIsAUsageError) { EXPECT_EQ(run_skillrun("run --bogus x.json").exit_code, 2); }

TEST(CliSmoke, VersionNamesTheCommit) {
  const Result r = run_skillrun("--version");
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_NE(r.output.find("commit"), std::string::npos);
}

}  // namespace
