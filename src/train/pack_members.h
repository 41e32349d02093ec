// Who is in a pack and where (train/trainer.h, docs/ARCHITECTURE.md "Packs"): which configs may
// share one (check_pack), the slot of each run (the runs of one seed next to each other, so that
// they share their batch and eval set), the slots a step trains and the segments they form (the
// active slots of one seed that are adjacent: one batched call per layer each).
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

#include "config/experiment.h"
#include "model/mlp.h"

namespace skillrun {

// Throws UsageError naming the first differing key when `configs` may not share a pack (empty,
// not sparse_parity, or their pack_signature differs).
void check_pack(const std::vector<ExperimentConfig>& configs);

// Slots range.first .. range.first + range.count - 1, all of seed group `group`.
struct Segment {
  std::size_t group = 0;
  RunRange range;
};

class PackMembers {
 public:
  // seeds[r]: the seed of run r (constructor order). Groups: the seeds in order of first
  // appearance; slots: group by group, each group's runs in constructor order. Every slot starts
  // active.
  explicit PackMembers(const std::vector<uint64_t>& seeds);

  std::size_t slots() const { return group_of_slot_.size(); }
  std::size_t groups() const { return seeds_.size(); }
  uint64_t seed(std::size_t group) const { return seeds_.at(group); }
  int first_slot(std::size_t group) const { return first_slot_.at(group); }
  int group_size(std::size_t group) const { return group_size_.at(group); }
  int slot(int run) const { return slot_of_run_.at(static_cast<std::size_t>(run)); }
  int run_at(int slot) const { return run_at_slot_.at(static_cast<std::size_t>(slot)); }
  std::size_t group(int slot) const { return group_of_slot_.at(static_cast<std::size_t>(slot)); }

  // The slots the next steps train; false (and nothing changes) when they are the active ones.
  bool set_active(const std::vector<bool>& active);
  const std::vector<bool>& active() const { return active_; }
  // The segments of the active slots, in slot order, and their groups, each once (the batches
  // a step draws).
  const std::vector<Segment>& segments() const { return segments_; }
  const std::vector<std::size_t>& drawn_groups() const { return drawn_groups_; }
  // The segments of the slots in `which` (by slot): the longest runs of adjacent slots of one group.
  std::vector<Segment> segments(const std::vector<bool>& which) const;

 private:
  std::vector<uint64_t> seeds_;               // by group
  std::vector<int> first_slot_, group_size_;  // by group
  std::vector<int> slot_of_run_, run_at_slot_;
  std::vector<std::size_t> group_of_slot_;
  std::vector<bool> active_;  // by slot
  std::vector<Segment> segments_;
  std::vector<std::size_t> drawn_groups_;
};

}  // namespace skillrun
