// Parameters and optimizer state in arenas: one allocation per model (values, gradients) and
// one per optimizer state slot (momenta; second moments), every tensor a view at an aligned
// offset. Offsets below are worked out by hand from kArenaAlignment = 64 elements.
#include <gtest/gtest.h>

#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "model/mlp.h"
#include "optim/optimizer.h"
#include "optim/pack_optimizer.h"

namespace skillrun {
namespace {

TEST(Arena, LayoutStartsEveryTensorOnAnAlignedOffset) {
  const std::vector<std::size_t> sizes = {3, 64, 65, 1};
  // 3 -> [0, 3) then pad to 64; 64 -> [64, 128); 65 -> [128, 193) then 256; 1 -> [256, 257) then 320.
  EXPECT_EQ(arena_layout(sizes), (std::vector<std::size_t>{0, 64, 128, 256, 320}));
  EXPECT_EQ(arena_layout({}), (std::vector<std::size_t>{0}));
}

TEST(Arena, ViewWritesThroughToTheArenaAndOwnsNothing) {
  CpuBackend backend;
  Buffer<float> arena(backend, 8);
  arena.upload(std::vector<float>{1, 2, 3, 4, 5, 6, 7, 8});
  {
    Buffer<float> view = Buffer<float>::view(arena, 2, 3);
    EXPECT_EQ(view.download(), (std::vector<float>{3, 4, 5}));
    view.upload(std::vector<float>{-1.5f, -2.5f, -3.5f});
    Buffer<float> moved = std::move(view);  // a moved view stays a view
    EXPECT_EQ(moved.data(), arena.data() + 2);
  }  // the views end here; the arena must still be whole
  EXPECT_EQ(arena.download(), (std::vector<float>{1, 2, -1.5f, -2.5f, -3.5f, 6, 7, 8}));
  EXPECT_THROW(Buffer<float>::view(arena, 6, 3), std::length_error);
}

TEST(Arena, MlpParametersAreConsecutiveAlignedViewsOfOneAllocation) {
  CpuBackend backend;
  Mlp mlp(backend, 10, 7, 3, 2, 4);  // weights 7x10, 7x7, 2x7; biases 7, 7, 2
  const auto& params = mlp.parameters();
  const float* base = params.front().value.data();
  const std::vector<std::size_t> expected = {0, 128, 192, 256, 320, 384};  // 70 -> 128, 7 -> 192, ...
  for (std::size_t i = 0; i < params.size(); ++i) {
    EXPECT_EQ(static_cast<std::size_t>(params[i].value.data() - base), expected[i]) << params[i].name;
    EXPECT_EQ(params[i].grad.data() - params.front().grad.data(), params[i].value.data() - base) << params[i].name;
  }
}

TEST(Arena, OptimizerStateSlotsAreOneAllocationEach) {
  CpuBackend backend;
  Mlp mlp(backend, 10, 7, 3, 2, 4);
  OptimizerConfig adam;
  adam.type = OptimizerType::Adam;
  adam.lr = 1e-3;
  PackOptimizer optimizer(backend, mlp.parameters(), adam);
  const std::vector<Buffer<float>*> state = optimizer.optimizer(0).state();  // per parameter: m, v
  ASSERT_EQ(state.size(), 12u);
  const std::vector<std::ptrdiff_t> expected = {0, 128, 192, 256, 320, 384};
  for (std::size_t i = 0; i < 6; ++i) {
    EXPECT_EQ(state[2 * i]->data() - state[0]->data(), expected[i]);      // first moments
    EXPECT_EQ(state[2 * i + 1]->data() - state[1]->data(), expected[i]);  // second moments
    EXPECT_EQ(state[2 * i]->download(), std::vector<float>(state[2 * i]->size(), 0.0f));
  }
}

TEST(Arena, MuonMomentaShareOneArenaWithTheOtherParamsFirstMoments) {
  CpuBackend backend;
  Mlp mlp(backend, 10, 7, 3, 2, 4);
  OptimizerConfig muon;
  muon.type = OptimizerType::Muon;
  muon.lr = 0.02;
  muon.momentum = 0.95;
  muon.other = std::make_shared<OptimizerConfig>();
  muon.other->type = OptimizerType::Adam;
  muon.other->lr = 1e-3;
  PackOptimizer optimizer(backend, mlp.parameters(), muon);
  // Muon takes the two hidden weights (one buffer each); Adam the rest (two each): 2 + 4 * 2.
  const std::vector<Buffer<float>*> state = optimizer.optimizer(0).state();
  ASSERT_EQ(state.size(), 10u);
  // state(): w0.m, b0.m, b0.v, w1.m, b1.m, b1.v, w2.m, w2.v, b2.m, b2.v. Slot 0 of every
  // parameter in order: w0 0 (70 -> 128), b0 128, w1 192 (49 -> 256), b1 256, w2 320, b2 384;
  // slot 1 (Adam's v) only for b0, b1, w2, b2: 0, 64, 128, 192.
  EXPECT_EQ(state[1]->data() - state[0]->data(), 128);
  EXPECT_EQ(state[3]->data() - state[0]->data(), 192);
  EXPECT_EQ(state[4]->data() - state[0]->data(), 256);
  EXPECT_EQ(state[8]->data() - state[0]->data(), 384);
  EXPECT_EQ(state[5]->data() - state[2]->data(), 64);
  EXPECT_EQ(state[7]->data() - state[2]->data(), 128);
  EXPECT_EQ(state[9]->data() - state[2]->data(), 192);
}

}  // namespace
}  // namespace skillrun
