// Philox4x32-10 against the Random123 known-answer vectors (kat_vectors, philox4x32_10).
#include <gtest/gtest.h>

#include "core/philox.h"

namespace skillrun {
namespace {

void expect_block(const Philox4x32& got, uint32_t a, uint32_t b, uint32_t c, uint32_t d) {
  EXPECT_EQ(got.v[0], a);
  EXPECT_EQ(got.v[1], b);
  EXPECT_EQ(got.v[2], c);
  EXPECT_EQ(got.v[3], d);
}

TEST(Philox, ZeroCounterZeroKeyMatchesRandom123) {
  expect_block(philox4x32_10({{0, 0, 0, 0}}, {{0, 0}}), 0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u);
}

TEST(Philox, AllOnesMatchesRandom123) {
  const uint32_t f = 0xffffffffu;
  expect_block(philox4x32_10({{f, f, f, f}}, {{f, f}}), 0x408f276du, 0x41c83b0eu, 0xa20bc7c6u, 0x6d5451fdu);
}

TEST(Philox, PiDigitsMatchRandom123) {
  expect_block(philox4x32_10({{0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u}}, {{0xa4093822u, 0x299f31d0u}}),
               0xd16cfe09u, 0x94fdccebu, 0x5001e420u, 0x24126ea1u);
}

TEST(Philox, DrawDependsOnEveryCoordinate) {
  const Philox4x32 base = philox_draw(7, RngStream::TrainBatch, 1, 2, 3);
  const Philox4x32 variants[] = {
      philox_draw(8, RngStream::TrainBatch, 1, 2, 3), philox_draw(7ull | (1ull << 40), RngStream::TrainBatch, 1, 2, 3),
      philox_draw(7, RngStream::EvalSet, 1, 2, 3),    philox_draw(7, RngStream::TrainBatch, 9, 2, 3),
      philox_draw(7, RngStream::TrainBatch, 1, 9, 3), philox_draw(7, RngStream::TrainBatch, 1, 2, 9)};
  for (const Philox4x32& v : variants) EXPECT_NE(v.v[0], base.v[0]);
}

TEST(Philox, Uniform01CoversUnitIntervalExactly) {
  EXPECT_EQ(uniform01(0u), 0.0f);
  EXPECT_LT(uniform01(0xffffffffu), 1.0f);  // (2^24 - 1) / 2^24
  EXPECT_EQ(uniform01(0x80000000u), 0.5f);
}

}  // namespace
}  // namespace skillrun
