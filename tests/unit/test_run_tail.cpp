// What `skillrun status` reads of a run: the last whole rows of metrics.csv from its end
// (last_metrics_rows), the same rows as the whole-file reader where the file is whole; and
// names and notes from files made printable.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>

#include <fmt/format.h>

#include "core/error.h"
#include "core/fs.h"
#include "core/strings.h"
#include "io/run_dir.h"

#include "support/temp_dir.h"

namespace skillrun {
namespace {
namespace fs = std::filesystem;

using Rows = std::vector<std::pair<int64_t, double>>;

const std::string kHeader = "step,wall_s,train_loss,mean_loss,loss_0,acc_0\n";

std::string row(int64_t step, const std::string& padding = "0.5") {
  return fmt::format("{},{}.5,{},0.5,0.5,0.9\n", step, step, padding);
}

class RunTail : public testing::Test {
 protected:
  void SetUp() override { dir_ = skillrun_test::fresh_temp_dir("run_tail"); }
  void TearDown() override { fs::remove_all(dir_); }
  void write(const std::string& text) { write_file_atomic(dir_ / "metrics.csv", text); }
  fs::path dir_;
};

TEST_F(RunTail, TheLastRowsOfAFileOfManyBlocksAreTheLastWholeRows) {
  std::string text = kHeader;
  for (int64_t s = 0; s < 20000; ++s) text += row(s);  // ~0.5 MB: many 64 KiB blocks
  write(text + "20000,1.0,0.");                        // torn: the run is writing it
  const Rows rows = last_metrics_rows(dir_, 10);
  ASSERT_EQ(rows.size(), 10u);
  for (int64_t i = 0; i < 10; ++i) {
    EXPECT_EQ(rows[i].first, 19990 + i);
    EXPECT_EQ(rows[i].second, static_cast<double>(19990 + i) + 0.5);
  }
  EXPECT_EQ(last_whole_metrics_step(dir_, false), 19999);  // the whole-file reader agrees
  EXPECT_EQ(last_metrics_rows(dir_, 1), Rows({{19999, 19999.5}}));
}

TEST_F(RunTail, RowsLongerThanABlockAndFewerRowsThanAskedFor) {
  const std::string wide(100000, '1');  // each row longer than a 64 KiB block
  write(kHeader + row(0, wide) + row(10, wide) + row(20, wide));
  EXPECT_EQ(last_metrics_rows(dir_, 2), Rows({{10, 10.5}, {20, 20.5}}));
  EXPECT_EQ(last_metrics_rows(dir_, 50), Rows({{0, 0.5}, {10, 10.5}, {20, 20.5}}));
  write(kHeader + "0,0.5,,1,1,0.5\n");  // no train_loss at step 0
  EXPECT_EQ(last_metrics_rows(dir_, 10), Rows({{0, 0.5}}));
}

TEST_F(RunTail, GoingBackTheRowsEndAtAMalformedRowOrAStepThatDoesNotGrow) {
  write(kHeader + row(0) + row(10) + "20,x,0.5,0.5,0.5,0.9\n" + row(30) + row(40));
  EXPECT_EQ(last_metrics_rows(dir_, 10), Rows({{30, 30.5}, {40, 40.5}}));
  write(kHeader + row(0) + row(10) + "20,20.5,0.5\n" + row(30));  // too few fields
  EXPECT_EQ(last_metrics_rows(dir_, 10), Rows({{30, 30.5}}));
  write(kHeader + row(0) + row(50) + row(40) + row(60));
  EXPECT_EQ(last_metrics_rows(dir_, 10), Rows({{40, 40.5}, {60, 60.5}}));
  write(kHeader + row(0) + "junk\n");
  EXPECT_TRUE(last_metrics_rows(dir_, 10).empty());
}

TEST_F(RunTail, NoRowsNoFileAndAFileThatCannotBeRead) {
  EXPECT_TRUE(last_metrics_rows(dir_, 10).empty());  // no metrics.csv
  write("");
  EXPECT_TRUE(last_metrics_rows(dir_, 10).empty());
  write("step,wall_s");  // killed while writing the header
  EXPECT_TRUE(last_metrics_rows(dir_, 10).empty());
  write(kHeader);
  EXPECT_TRUE(last_metrics_rows(dir_, 10).empty());
  fs::remove(dir_ / "metrics.csv");
  fs::create_directory(dir_ / "metrics.csv");
  try {
    last_metrics_rows(dir_, 10);
    FAIL() << "a directory read as metrics.csv";
  } catch (const RuntimeError& e) {
    EXPECT_NE(std::string(e.what()).find((dir_ / "metrics.csv").string()), std::string::npos) << e.what();
  }
}

TEST(Printable, ControlCharactersInvalidBytesAndOverridesBecomeVisibleEscapes) {
  EXPECT_EQ(printable("plain name=1,seed=2"), "plain name=1,seed=2");
  EXPECT_EQ(printable("caf\xc3\xa9 \xe2\x9c\x93"), "caf\xc3\xa9 \xe2\x9c\x93");  // UTF-8 stays
  EXPECT_EQ(printable("a\nb\tc\rd"), "a\\nb\\tc\\rd");
  EXPECT_EQ(printable("\x1b[2J\x07\x7f"), "\\x1b[2J\\x07\\x7f");
  EXPECT_EQ(printable("back\\slash"), "back\\\\slash");
  EXPECT_EQ(printable("\xc2\x9b"
                      "31m"),
            "\\u009b31m");  // C1 control (CSI)
  EXPECT_EQ(printable("\xe2\x80\xae"
                      "evil"),
            "\\u202eevil");                        // right-to-left override
  EXPECT_EQ(printable("\xff\xc3"), "\\xff\\xc3");  // not UTF-8, cut short
  EXPECT_EQ(printable("\xc0\xaf"), "\\xc0\\xaf");  // overlong '/'
  EXPECT_EQ(printable(std::string("nul\0here", 8)), "nul\\x00here");
}

}  // namespace
}  // namespace skillrun
