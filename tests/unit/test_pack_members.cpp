// Where a pack's runs sit (train/pack_members.h): slots grouped by seed, and the segments the
// active slots form as runs leave the pack. Expected layouts are worked out by hand.
#include <gtest/gtest.h>

#include <cstddef>
#include <tuple>
#include <vector>

#include "train/pack_members.h"

namespace skillrun {
namespace {

// (group, first slot, count) of each segment.
using Segments = std::vector<std::tuple<std::size_t, int, int>>;
Segments flat(const std::vector<Segment>& segments) {
  Segments out;
  for (const Segment& s : segments) out.emplace_back(s.group, s.range.first, s.range.count);
  return out;
}

TEST(PackMembers, RunsOfOneSeedSitInAdjacentSlotsSeedsInOrderOfFirstAppearance) {
  const PackMembers m({2, 1, 2, 3, 1});
  ASSERT_EQ(m.groups(), 3u);
  EXPECT_EQ(m.seed(0), 2u);
  EXPECT_EQ(m.seed(1), 1u);
  EXPECT_EQ(m.seed(2), 3u);
  // Seed 2: runs 0 and 2; seed 1: runs 1 and 4; seed 3: run 3.
  EXPECT_EQ((std::vector<int>{m.slot(0), m.slot(1), m.slot(2), m.slot(3), m.slot(4)}),
            (std::vector<int>{0, 2, 1, 4, 3}));
  for (int run = 0; run < 5; ++run) EXPECT_EQ(m.run_at(m.slot(run)), run);
  EXPECT_EQ((std::vector<std::size_t>{m.group(0), m.group(1), m.group(2), m.group(3), m.group(4)}),
            (std::vector<std::size_t>{0, 0, 1, 1, 2}));
  EXPECT_EQ((std::vector<int>{m.first_slot(0), m.first_slot(1), m.first_slot(2)}), (std::vector<int>{0, 2, 4}));
  EXPECT_EQ((std::vector<int>{m.group_size(0), m.group_size(1), m.group_size(2)}), (std::vector<int>{2, 2, 1}));
}

TEST(PackMembers, WhileEveryRunTrainsEachSeedIsOneSegment) {
  const PackMembers m({2, 1, 2, 3, 1});
  EXPECT_EQ(m.active(), std::vector<bool>(5, true));
  EXPECT_EQ(flat(m.segments()), (Segments{{0, 0, 2}, {1, 2, 2}, {2, 4, 1}}));
  EXPECT_EQ(m.drawn_groups(), (std::vector<std::size_t>{0, 1, 2}));
}

TEST(PackMembers, RunsLeavingThePackShrinkTheSegmentsAndAnEmptySeedDrawsNoBatch) {
  PackMembers m({2, 1, 2, 3, 1});
  // Slot 1 (seed 2's second run) and slot 4 (seed 3's only one) leave.
  EXPECT_TRUE(m.set_active({true, false, true, true, false}));
  EXPECT_EQ(flat(m.segments()), (Segments{{0, 0, 1}, {1, 2, 2}}));
  EXPECT_EQ(m.drawn_groups(), (std::vector<std::size_t>{0, 1}));
  // Then slot 0 too: seed 2 has no run left.
  EXPECT_TRUE(m.set_active({false, false, true, true, false}));
  EXPECT_EQ(flat(m.segments()), (Segments{{1, 2, 2}}));
  EXPECT_EQ(m.drawn_groups(), (std::vector<std::size_t>{1}));
}

TEST(PackMembers, ARunLeavingTheMiddleOfASeedSplitsItsSegmentButTheSeedDrawsOnce) {
  PackMembers m({7, 7, 7, 7});
  EXPECT_TRUE(m.set_active({true, false, true, true}));
  EXPECT_EQ(flat(m.segments()), (Segments{{0, 0, 1}, {0, 2, 2}}));
  EXPECT_EQ(m.drawn_groups(), (std::vector<std::size_t>{0}));
}

TEST(PackMembers, TheSameActiveSlotsAgainChangeNothing) {
  PackMembers m({1, 2});
  EXPECT_FALSE(m.set_active({true, true}));  // every slot starts active
  EXPECT_TRUE(m.set_active({false, true}));
  EXPECT_FALSE(m.set_active({false, true}));
  EXPECT_EQ(flat(m.segments()), (Segments{{1, 1, 1}}));
}

TEST(PackMembers, SegmentsOfAnySetOfSlotsLeaveTheActiveOnesAsTheyAre) {
  PackMembers m({1, 1, 2, 2});
  EXPECT_EQ(flat(m.segments({true, true, false, true})), (Segments{{0, 0, 2}, {1, 3, 1}}));
  EXPECT_EQ(flat(m.segments({false, false, false, false})), Segments{});
  EXPECT_EQ(flat(m.segments()), (Segments{{0, 0, 2}, {1, 2, 2}}));
  EXPECT_THROW(m.segments({true}), std::invalid_argument);
}

}  // namespace
}  // namespace skillrun
