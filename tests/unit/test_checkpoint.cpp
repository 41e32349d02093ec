// Checkpoint files: round trip, corruption and truncation detected by the checksum, fallback
// to the previous checkpoint, pruning of old ones.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include <spdlog/spdlog.h>

#include "config/experiment.h"
#include "core/error.h"
#include "core/fs.h"
#include "train/checkpoint.h"

#include "support/temp_dir.h"

namespace skillrun {
namespace {
namespace fs = std::filesystem;

fs::path fresh_dir(const std::string& name) { return skillrun_test::fresh_temp_dir("ckpt_" + name); }

// The checkpoint identity of a small resolved config with this seed.
nlohmann::json identity(uint64_t seed) {
  const nlohmann::json config = {
      {"seed", seed}, {"task", {{"type", "sparse_parity"}}}, {"optimizer", {{"type", "adam"}, {"lr", 0.001}}}};
  return checkpoint_identity(to_json(parse_experiment(config)));
}

CheckpointState sample_state(int64_t step, uint64_t seed = 1) {
  CheckpointState s;
  s.run_config = identity(seed);
  s.step = step;
  s.optimizer_steps = step;
  s.wall_seconds = 12.5;
  s.T_k = {100, std::nullopt, 250};
  s.names = {"layers.0.weight", "optimizer.state.0"};
  s.buffers = {{1.5f, -2.25f, 3.0f}, {0.125f, static_cast<float>(step)}};
  return s;
}

fs::path checkpoint_file(const fs::path& dir, int64_t step) {
  char name[32];
  std::snprintf(name, sizeof name, "ckpt-%010lld.bin", static_cast<long long>(step));
  return dir / "checkpoint" / name;
}

TEST(Checkpoint, RoundTripKeepsEveryField) {
  const fs::path dir = fresh_dir("roundtrip");
  write_checkpoint(dir, sample_state(40));
  const CheckpointState back = read_checkpoint(checkpoint_file(dir, 40));
  EXPECT_EQ(back.run_config, identity(1));
  EXPECT_EQ(back.step, 40);
  EXPECT_EQ(back.optimizer_steps, 40);
  EXPECT_EQ(back.wall_seconds, 12.5);
  EXPECT_EQ(back.T_k, sample_state(40).T_k);
  EXPECT_EQ(back.names, sample_state(40).names);
  EXPECT_EQ(back.buffers, sample_state(40).buffers);
  fs::remove_all(dir);
}

TEST(Checkpoint, FlippedByteFailsTheChecksum) {
  const fs::path dir = fresh_dir("flip");
  write_checkpoint(dir, sample_state(10));
  std::string bytes = read_file(checkpoint_file(dir, 10));
  bytes[bytes.size() - 12] ^= 0x01;  // inside the last float buffer
  write_file_atomic(checkpoint_file(dir, 10), bytes);
  try {
    read_checkpoint(checkpoint_file(dir, 10));
    FAIL() << "a corrupted checkpoint was accepted";
  } catch (const RuntimeError& e) {
    EXPECT_NE(std::string(e.what()).find("checksum"), std::string::npos) << e.what();
  }
  fs::remove_all(dir);
}

TEST(Checkpoint, TruncatedFileIsRejected) {
  const fs::path dir = fresh_dir("truncate");
  write_checkpoint(dir, sample_state(10));
  const std::string bytes = read_file(checkpoint_file(dir, 10));
  write_file_atomic(checkpoint_file(dir, 10), bytes.substr(0, bytes.size() / 2));
  EXPECT_THROW(read_checkpoint(checkpoint_file(dir, 10)), RuntimeError);
  fs::remove_all(dir);
}

TEST(Checkpoint, CorruptedNewestFallsBackToThePrevious) {
  spdlog::set_level(spdlog::level::off);
  const fs::path dir = fresh_dir("fallback");
  write_checkpoint(dir, sample_state(10));
  write_checkpoint(dir, sample_state(20));
  const std::string bytes = read_file(checkpoint_file(dir, 20));
  write_file_atomic(checkpoint_file(dir, 20), bytes.substr(0, bytes.size() - 3));
  const auto loaded = load_latest_checkpoint(dir, identity(1));
  ASSERT_TRUE(loaded.has_value());
  EXPECT_EQ(loaded->step, 10);
  spdlog::set_level(spdlog::level::info);
  fs::remove_all(dir);
}

TEST(Checkpoint, NoCheckpointDirectoryMeansNone) {
  const fs::path dir = fresh_dir("none");
  EXPECT_FALSE(load_latest_checkpoint(dir, identity(1)).has_value());
  fs::remove_all(dir);
}

TEST(Checkpoint, KeepsOnlyTheNewestTwo) {
  const fs::path dir = fresh_dir("prune");
  for (int64_t step : {10, 20, 30}) write_checkpoint(dir, sample_state(step));
  EXPECT_FALSE(fs::exists(checkpoint_file(dir, 10)));
  EXPECT_TRUE(fs::exists(checkpoint_file(dir, 20)));
  EXPECT_TRUE(fs::exists(checkpoint_file(dir, 30)));
  EXPECT_EQ(load_latest_checkpoint(dir, identity(1))->step, 30);
  fs::remove_all(dir);
}

TEST(Checkpoint, AnotherRunsCheckpointIsSkippedForTheRunsOwnOlderOne) {
  spdlog::set_level(spdlog::level::off);
  const fs::path dir = fresh_dir("foreign");
  write_checkpoint(dir, sample_state(10));
  write_checkpoint(dir, sample_state(20, 2));  // copied in from another seed's run
  const auto loaded = load_latest_checkpoint(dir, identity(1));
  spdlog::set_level(spdlog::level::info);
  ASSERT_TRUE(loaded.has_value());
  EXPECT_EQ(loaded->step, 10);
  EXPECT_EQ(loaded->run_config, identity(1));
  fs::remove_all(dir);
}

TEST(Checkpoint, CheckpointPastTheUsableStepIsSkipped) {
  spdlog::set_level(spdlog::level::off);
  const fs::path dir = fresh_dir("past");
  write_checkpoint(dir, sample_state(10));
  write_checkpoint(dir, sample_state(20));
  // metrics.csv covers step 19 at most: resuming at 20 would lose a row.
  const auto loaded = load_latest_checkpoint(dir, identity(1), 19);
  spdlog::set_level(spdlog::level::info);
  ASSERT_TRUE(loaded.has_value());
  EXPECT_EQ(loaded->step, 10);
  EXPECT_FALSE(load_latest_checkpoint(dir, identity(1), 9).has_value());
  fs::remove_all(dir);
}

TEST(Checkpoint, JunkFileClaimingALaterStepIsRemovedAtTheNextWrite) {
  spdlog::set_level(spdlog::level::off);
  const fs::path dir = fresh_dir("junk");
  write_checkpoint(dir, sample_state(10));
  write_file_atomic(checkpoint_file(dir, 99999), "junk");
  write_checkpoint(dir, sample_state(20));
  spdlog::set_level(spdlog::level::info);
  // Without the fix the junk file took one of the two kept slots and step 10 was deleted.
  EXPECT_FALSE(fs::exists(checkpoint_file(dir, 99999)));
  EXPECT_TRUE(fs::exists(checkpoint_file(dir, 10)));
  EXPECT_TRUE(fs::exists(checkpoint_file(dir, 20)));
  fs::remove_all(dir);
}

// A run directory deleted while its run trains is not made again by the next checkpoint.
TEST(Checkpoint, WriteIntoADeletedRunDirectoryThrowsAndRecreatesNothing) {
  const fs::path dir = fresh_dir("deleted");
  write_checkpoint(dir, sample_state(10));
  fs::remove_all(dir);
  EXPECT_THROW(write_checkpoint(dir, sample_state(20)), RuntimeError);
  EXPECT_FALSE(fs::exists(dir));
}

TEST(CheckpointIdentity, IgnoresWhenToCheckpointButNotWhatIsTrained) {
  const nlohmann::json base = {{"seed", 1},
                               {"train", {{"max_steps", 100}, {"checkpoint_every", 10}, {"checkpoint_seconds", 300}}}};
  nlohmann::json other_cadence = base, other_seed = base, other_steps = base;
  other_cadence["train"]["checkpoint_every"] = 7;
  other_cadence["train"]["checkpoint_seconds"] = 5;
  other_seed["seed"] = 2;
  other_steps["train"]["max_steps"] = 200;
  EXPECT_EQ(checkpoint_identity(base), checkpoint_identity(other_cadence));
  EXPECT_NE(checkpoint_identity(base), checkpoint_identity(other_seed));
  EXPECT_NE(checkpoint_identity(base), checkpoint_identity(other_steps));
}

// A later build that adds a config key with a default must still resume the runs an earlier
// one checkpointed: the stored identity is resolved again, as config.json is.
TEST(CheckpointIdentity, KeyAddedWithADefaultSinceTheCheckpointStillMatches) {
  spdlog::set_level(spdlog::level::off);
  const fs::path dir = fresh_dir("older_build");
  CheckpointState older = sample_state(10);
  older.run_config.erase("device");  // as if written before `device` existed (default "auto")
  older.run_config["eval"].erase("tau_bits");
  write_checkpoint(dir, older);
  const auto loaded = load_latest_checkpoint(dir, identity(1));
  spdlog::set_level(spdlog::level::info);
  ASSERT_TRUE(loaded.has_value());
  EXPECT_EQ(loaded->step, 10);
  fs::remove_all(dir);
}

TEST(CheckpointIdentity, FileWithoutAnIdentityIsAccepted) {
  const fs::path dir = fresh_dir("no_identity");
  CheckpointState old = sample_state(10);
  old.run_config = nullptr;  // written before identities
  write_checkpoint(dir, old);
  EXPECT_EQ(load_latest_checkpoint(dir, identity(1))->step, 10);
  fs::remove_all(dir);
}

TEST(Checkpoint, Fnv1aMatchesPublishedVectors) {
  // FNV-1a 64 reference values: "" -> cbf29ce484222325, "a" -> af63dc4c8601ec8c.
  EXPECT_EQ(fnv1a64(""), 0xcbf29ce484222325ull);
  EXPECT_EQ(fnv1a64("a"), 0xaf63dc4c8601ec8cull);
}

}  // namespace
}  // namespace skillrun
