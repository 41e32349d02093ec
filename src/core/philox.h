// Philox4x32-10 (Salmon et al., SC'11): the one counter-based generator behind every random
// value in skillrun. Host+device code; checked against the Random123 known-answer vectors.
// Every draw is a pure function of (key, counter), so the CPU and CUDA backends produce the
// same bits and a resumed run needs no generator state.
#pragma once
#include <cstdint>

#include "core/hostdevice.h"

namespace skillrun {

struct Philox4x32 {
  uint32_t v[4];
};
struct PhiloxKey {
  uint32_t k[2];
};

namespace philox_detail {
constexpr uint32_t kMul0 = 0xD2511F53u;
constexpr uint32_t kMul1 = 0xCD9E8D57u;
constexpr uint32_t kWeyl0 = 0x9E3779B9u;  // golden ratio
constexpr uint32_t kWeyl1 = 0xBB67AE85u;  // sqrt(3) - 1

SKR_HD void mulhilo(uint32_t a, uint32_t b, uint32_t& hi, uint32_t& lo) {
  const uint64_t p = static_cast<uint64_t>(a) * static_cast<uint64_t>(b);
  hi = static_cast<uint32_t>(p >> 32);
  lo = static_cast<uint32_t>(p);
}
}  // namespace philox_detail

// One Philox4x32-10 block: 10 rounds, the key bumped by the Weyl constants between rounds.
SKR_HD Philox4x32 philox4x32_10(Philox4x32 ctr, PhiloxKey key) {
  using namespace philox_detail;
  for (int round = 0; round < 10; ++round) {
    if (round > 0) {
      key.k[0] += kWeyl0;
      key.k[1] += kWeyl1;
    }
    uint32_t hi0, lo0, hi1, lo1;
    mulhilo(kMul0, ctr.v[0], hi0, lo0);
    mulhilo(kMul1, ctr.v[2], hi1, lo1);
    ctr = Philox4x32{{hi1 ^ ctr.v[1] ^ key.k[0], lo1, hi0 ^ ctr.v[3] ^ key.k[1], lo0}};
  }
  return ctr;
}

// Streams separate the independent uses of one seed (see docs/ARCHITECTURE.md, "Randomness").
enum class RngStream : uint32_t {
  TrainBatch = 1,  // counter (stream, step, sample, block)
  EvalSet = 2,     // counter (stream, task, sample, block)
  Subsets = 3,     // counter (stream, task, draw, 0)
  InitWeights = 4, // counter (stream, parameter, element / 4, 0)
  IclBasis = 5,    // counter (stream, basis (0: Sigma_x, 1: Sigma_w), element / 2, 0)
  AssocAnswers = 6,     // counter (stream, fact, 0, 0): the answer f(i) of assoc_memory fact i
  AssocEmbeddings = 7,  // counter (stream, table (0: E, 1: U), element / 2, 0): its embeddings
};

SKR_HD PhiloxKey philox_key(uint64_t seed) {
  return PhiloxKey{{static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32)}};
}

// The draw used everywhere: block `block` of (stream, a, b) under `seed`.
SKR_HD Philox4x32 philox_draw(uint64_t seed, RngStream stream, uint32_t a, uint32_t b,
                              uint32_t block) {
  return philox4x32_10(Philox4x32{{static_cast<uint32_t>(stream), a, b, block}}, philox_key(seed));
}

// Uniform float in [0, 1) from the top 24 bits of a word (exact in fp32).
SKR_HD float uniform01(uint32_t word) { return static_cast<float>(word >> 8) * (1.0f / 16777216.0f); }

}  // namespace skillrun
