// The run directory as a guarded place: one writer at a time (run.lock), no run written into
// someone's own files, failures recorded, no temp files left behind, and the whole rows of a
// damaged metrics.csv told apart from the rest.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/file_lock.h"
#include "core/fs.h"
#include "io/run_dir.h"

#include "support/temp_dir.h"

namespace skillrun {
namespace {
namespace fs = std::filesystem;

fs::path fresh_dir(const std::string& name) { return skillrun_test::fresh_temp_dir("rundir_" + name); }

TEST(FileLock, SecondLockIsRefusedUntilTheFirstIsReleased) {
  const fs::path dir = fresh_dir("lock");
  {
    std::optional<FileLock> first = FileLock::try_acquire(dir / "x.lock");
    ASSERT_TRUE(first.has_value());
    EXPECT_FALSE(FileLock::try_acquire(dir / "x.lock").has_value());
  }
  EXPECT_TRUE(FileLock::try_acquire(dir / "x.lock").has_value());
  fs::remove_all(dir);
}

TEST(FileLock, InheritedDescriptorOfTheSameFileIsAdopted) {
  const fs::path dir = fresh_dir("adopt");
  std::optional<FileLock> held = FileLock::try_acquire(dir / "a.lock");
  ASSERT_TRUE(held.has_value());
  // A descriptor sharing the open file description stands for a child's inherited copy.
  const int copy = ::dup(held->fd());
  EXPECT_TRUE(FileLock::adopt(copy, dir / "a.lock").has_value());  // closes `copy` when dropped
  // The right descriptor for the wrong file, or no descriptor, adopts nothing.
  std::optional<FileLock> other = FileLock::try_acquire(dir / "b.lock");
  EXPECT_FALSE(FileLock::adopt(::dup(other->fd()), dir / "a.lock").has_value());
  EXPECT_FALSE(FileLock::adopt(-1, dir / "a.lock").has_value());
  fs::remove_all(dir);
}

TEST(AtomicWrite, FailedWriteLeavesNoTempFile) {
  const fs::path dir = fresh_dir("tmp");
  fs::create_directories(dir / "target" / "inside");  // rename onto a non-empty directory fails
  EXPECT_THROW(write_file_atomic(dir / "target", "text"), RuntimeError);
  EXPECT_FALSE(fs::exists(dir / "target.tmp"));
  fs::remove_all(dir);
}

TEST(RunDirectory, SecondWriterIsRefusedWhileTheFirstHoldsTheDirectory) {
  const fs::path dir = fresh_dir("busy");
  RunDirectory first(dir / "run", RunDirMode::Fresh);
  first.write_config(nlohmann::json{{"seed", 1}});
  try {
    RunDirectory second(dir / "run", RunDirMode::Resume);
    FAIL() << "a second writer was let in";
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("another skillrun process"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find(std::to_string(::getpid())), std::string::npos) << e.what();
  }
  fs::remove_all(dir);
}

TEST(RunDirectory, NonEmptyDirectoryWithoutARunIsRefusedAndKept) {
  const fs::path dir = fresh_dir("foreign");
  write_file_atomic(dir / "notes.txt", "my notes\n");
  for (RunDirMode mode : {RunDirMode::Fresh, RunDirMode::Resume}) {
    try {
      RunDirectory run(dir, mode);
      FAIL() << "a run was let into a directory of other files";
    } catch (const UsageError& e) {
      EXPECT_NE(std::string(e.what()).find("holds no run"), std::string::npos) << e.what();
    }
  }
  EXPECT_EQ(read_file(dir / "notes.txt"), "my notes\n");
  EXPECT_FALSE(fs::exists(dir / kRunLockFile));  // refused before anything was created
  fs::remove_all(dir);
}

TEST(RunDirectory, FreshRunIntoAnEmptyDirectoryIsAccepted) {
  const fs::path dir = fresh_dir("empty");
  EXPECT_NO_THROW(RunDirectory run(dir, RunDirMode::Fresh));
  fs::remove_all(dir);
}

TEST(RunDirectory, FailureIsRecordedInTheSummaryKeepingWhatItHad) {
  const fs::path dir = fresh_dir("failed");
  RunDirectory run(dir, RunDirMode::Fresh);
  RunSummary s;
  s.steps = 40;
  s.T_k = {30, std::nullopt};
  run.write_summary(s);
  run.record_failure("cannot write metrics.csv: No space left on device");
  const auto j = nlohmann::json::parse(read_file(dir / "summary.json"));
  EXPECT_EQ(j["status"], "failed");
  EXPECT_EQ(j["message"], "cannot write metrics.csv: No space left on device");
  EXPECT_EQ(j["steps"], 40);
  EXPECT_EQ(j["T_k"][0], 30);
  fs::remove_all(dir);
}

TEST(RunDirectory, MalformedMetricsRowEndsTheWholeRows) {
  spdlog::set_level(spdlog::level::off);
  const fs::path dir = fresh_dir("metrics");
  const std::string header = "step,wall_s,train_loss,mean_loss,loss_0,acc_0\n";
  write_file_atomic(dir / "metrics.csv",
                    header + "0,0.1,,1,1,0.5\n5,0.2,0.9,0.8,0.8,0.6\n10,0.3,0.7,x,0.6,0.7\n15,0.4,0.5,0.4,0.4,0.8\n");
  EXPECT_EQ(last_whole_metrics_step(dir, false), 5);  // the row of step 10 is malformed
  write_file_atomic(dir / "metrics.csv", header + "0,0.1,,1,1,0.5\n5,0.2,0.9,0.8,0.8,0.6\n10,0.3,0.7");
  EXPECT_EQ(last_whole_metrics_step(dir, false), 5);  // torn last line
  write_file_atomic(dir / "metrics.csv", header + "0,0.1,,1,1,0.5\n0,0.2,0.9,0.8,0.8,0.6\n");
  EXPECT_EQ(last_whole_metrics_step(dir, false), 0);  // a step that does not grow
  fs::remove(dir / "metrics.csv");
  EXPECT_FALSE(last_whole_metrics_step(dir, false).has_value());
  spdlog::set_level(spdlog::level::info);
  fs::remove_all(dir);
}

TEST(RunDirectory, TempFilesOfAKilledWriteAreRemovedAndMakeNoDirectoryForeign) {
  spdlog::set_level(spdlog::level::off);
  const fs::path dir = fresh_dir("stale_tmp");
  // Killed inside its first write_config: only the log and the temp file are there.
  write_file_atomic(dir / "run.log", "started\n");
  write_file_atomic(dir / "config.json.tmp", "{\"seed\": ");
  EXPECT_NO_THROW(RunDirectory run(dir, RunDirMode::Resume));
  EXPECT_FALSE(fs::exists(dir / "config.json.tmp"));
  // Killed inside a checkpoint write (a whole model each time): removed too.
  fs::create_directories(dir / "checkpoint");
  write_file_atomic(dir / "checkpoint" / "ckpt-0000000050.bin.tmp", std::string(1000, 'x'));
  EXPECT_NO_THROW(RunDirectory run(dir, RunDirMode::Resume));
  EXPECT_FALSE(fs::exists(dir / "checkpoint" / "ckpt-0000000050.bin.tmp"));
  spdlog::set_level(spdlog::level::info);
  fs::remove_all(dir);
}

// A run directory deleted (rm -rf) while its run trains: every later write throws, naming the
// directory, and none recreates it (the checkpoint's is in test_checkpoint.cpp).
TEST(RunDirectory, WritesAfterTheDirectoryIsDeletedThrowAndRecreateNothing) {
  spdlog::set_level(spdlog::level::off);
  const fs::path dir = fresh_dir("deleted") / "run";
  RunDirectory run(dir, RunDirMode::Fresh);
  run.write_config({{"seed", 1}});
  run.open_metrics(1);
  MetricsRow row;
  row.loss_bits = {1};
  row.accuracy = {0.5};
  run.append_metrics(row);
  fs::remove_all(dir);
  const auto expect_refused = [&](auto&& write) {
    try {
      write();
      ADD_FAILURE() << "a write into the deleted " << dir << " did not throw";
    } catch (const RuntimeError& e) {
      EXPECT_NE(std::string(e.what()).find(dir.string() + " was deleted, moved or replaced while the run trained"),
                std::string::npos)
          << e.what();
    }
    EXPECT_FALSE(fs::exists(dir));
  };
  // The open metrics.csv would take the row into the unlinked file, and nothing would be seen.
  row.step = 5;
  expect_refused([&] { run.append_metrics(row); });
  expect_refused([&] { run.write_summary(RunSummary{}); });
  expect_refused([&] { run.write_config({{"seed", 1}}); });
  expect_refused([&] { run.open_metrics(1, 0); });
  run.record_failure("the run failed");  // best effort: records nothing, recreates nothing
  EXPECT_FALSE(fs::exists(dir));
  spdlog::set_level(spdlog::level::info);
  fs::remove_all(dir.parent_path());
}

// Deleted and made again by someone else (or moved away and another put in its place): the new
// directory at that path is not the run's, and nothing is written into it.
TEST(RunDirectory, WritesIntoADirectoryThatReplacedItThrowAndLeaveItEmpty) {
  spdlog::set_level(spdlog::level::off);
  const fs::path root = fresh_dir("replaced");
  for (const bool moved : {false, true}) {
    const fs::path dir = root / "run";
    RunDirectory run(dir, RunDirMode::Fresh);
    run.write_summary(RunSummary{});
    if (moved) {
      fs::rename(dir, root / "moved");
    } else {
      fs::remove_all(dir);
    }
    fs::create_directories(dir);
    EXPECT_THROW(run.write_summary(RunSummary{}), RuntimeError);
    EXPECT_THROW(run.open_metrics(1), RuntimeError);
    run.record_failure("the run failed");
    EXPECT_TRUE(fs::is_empty(dir)) << dir;
    if (moved) {  // the moved directory is the run's, but no longer where the run writes
      EXPECT_FALSE(fs::exists(root / "moved" / "metrics.csv"));
      EXPECT_EQ(read_summary(root / "moved")->at("status"), "running");
    }
    fs::remove_all(dir);
  }
  spdlog::set_level(spdlog::level::info);
  fs::remove_all(root);
}

TEST(RunDirectory, DeeplyNestedSummaryIsUnreadableNotACrash) {
  const fs::path dir = fresh_dir("deep");
  // 100 000 levels: the JSON library would recurse that deep building and destroying it.
  write_file_atomic(dir / "summary.json", "{\"status\": " + std::string(100000, '[') + std::string(100000, ']') + "}");
  EXPECT_FALSE(recorded_status(dir).has_value());
  fs::remove_all(dir);
}

}  // namespace
}  // namespace skillrun
