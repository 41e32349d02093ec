// Smoke tests of the built executable that need no config: help, version, bad usage.
#include "cli_support.h"

namespace {

using skillrun_test::Result;

class CliSmoke : public skillrun_test::CliTest {};

TEST_F(CliSmoke, HelpListsTheSubcommands) {
  const Result r = skillrun({"--help"});
  EXPECT_EQ(r.status, 0);
  for (const char* sub : {"run", "validate", "bench", "analyze"}) EXPECT_NE(r.out.find(sub), std::string::npos) << sub;
}

TEST_F(CliSmoke, NoSubcommandIsAUsageError) { EXPECT_EQ(skillrun({}).status, 2); }

TEST_F(CliSmoke, UnknownFlagIsAUsageError) { EXPECT_EQ(skillrun({"run", "--bogus", "x.json"}).status, 2); }

TEST_F(CliSmoke, VersionNamesTheCommit) {
  const Result r = skillrun({"--version"});
  EXPECT_EQ(r.status, 0);
  EXPECT_NE((r.out + r.err).find("commit"), std::string::npos);
}

}  // namespace
