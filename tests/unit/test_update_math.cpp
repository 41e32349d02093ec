// The optimizer element functions of backend/update_math.h (shared by the CPU loops and the CUDA
// kernels) against a double-precision reference written here from the documented formulas, in
// float and double, on random non-zero data over a few steps so the state is exercised.
#include "backend/update_math.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>
#include <type_traits>
#include <vector>

#include "backend/adam_scalars.h"

namespace skillrun {
namespace {

constexpr int kElements = 64;
constexpr int kSteps = 4;

// x rounded to T: the reference and the element function then start from the same values, and
// differ only by the rounding of the operations.
template <class T>
double exact(double x) {
  return static_cast<double>(static_cast<T>(x));
}

// Normal values pushed away from zero (|x| >= 0.1), so no term of a formula vanishes; exact in T.
template <class T>
std::vector<double> nonzero(int n, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<double> dist(0.0, 1.0);
  std::vector<double> v(n);
  for (double& x : v) {
    x = dist(rng);
    x = exact<T>(x + (x < 0 ? -0.1 : 0.1));
  }
  return v;
}

template <class T>
class UpdateMath : public ::testing::Test {
 protected:
  // The inputs are exact in T, so T's result differs from the double reference only by the
  // rounding of its operations: a few ulp of T, relative to the size of the terms (scale).
  static T cast(double x) { return static_cast<T>(x); }
  static void expect_close(T got, double ref, double scale) {
    const double tol = 16.0 * std::numeric_limits<T>::epsilon() * scale;
    EXPECT_NEAR(static_cast<double>(got), ref, tol);
  }
};
using ElementTypes = ::testing::Types<float, double>;
TYPED_TEST_SUITE(UpdateMath, ElementTypes);

TYPED_TEST(UpdateMath, SignOf) {
  using T = TypeParam;
  for (double x : nonzero<T>(kElements, 1)) EXPECT_EQ(sign_of(static_cast<T>(x)), x > 0 ? T(1) : T(-1));
}

TYPED_TEST(UpdateMath, SgdPlainHeavyBallAndNesterov) {
  using T = TypeParam;
  const double lr = exact<T>(0.05), mu = exact<T>(0.9), wd = exact<T>(0.01);
  const std::vector<double> w0 = nonzero<T>(kElements, 2), m0 = nonzero<T>(kElements, 3);
  for (int i = 0; i < kElements; ++i) {
    double wp = w0[i], wh = w0[i], mh = m0[i], wn = w0[i], mn = m0[i];  // reference
    T tp = this->cast(wp), th = this->cast(wh), tmh = this->cast(mh), tn = this->cast(wn), tmn = this->cast(mn);
    for (int s = 0; s < kSteps; ++s) {
      const double g = nonzero<T>(kElements, 100 + s)[i];
      const T gt = this->cast(g);
      // plain: w -= lr (g + wd w)
      wp -= lr * (g + wd * wp);
      tp = sgd_element(tp, gt, this->cast(lr), this->cast(wd));
      // heavy ball: m = mu m + g + wd w; w -= lr m
      mh = mu * mh + g + wd * wh;
      wh -= lr * mh;
      sgd_heavy_ball_element(th, gt, tmh, this->cast(lr), this->cast(mu), this->cast(wd));
      // Nesterov: g' = g + wd w; m = mu m + g'; w -= lr (g' + mu m)
      const double gn = g + wd * wn;
      mn = mu * mn + gn;
      wn -= lr * (gn + mu * mn);
      sgd_nesterov_element(tn, gt, tmn, this->cast(lr), this->cast(mu), this->cast(wd));
    }
    this->expect_close(tp, wp, 10.0);
    this->expect_close(th, wh, 10.0);
    this->expect_close(tmh, mh, 10.0);
    this->expect_close(tn, wn, 10.0);
    this->expect_close(tmn, mn, 10.0);
  }
}

TYPED_TEST(UpdateMath, NmdStepsAlongTheNormalizedMomentum) {
  using T = TypeParam;
  const double lr = exact<T>(0.02), beta = exact<T>(0.95), wd = exact<T>(0.1);
  std::vector<double> w = nonzero<T>(kElements, 4), m = nonzero<T>(kElements, 5);
  std::vector<T> wt(kElements), mt(kElements);
  for (int i = 0; i < kElements; ++i) wt[i] = this->cast(w[i]), mt[i] = this->cast(m[i]);
  for (int s = 0; s < kSteps; ++s) {
    const std::vector<double> g = nonzero<T>(kElements, 200 + s);
    double ref_sq = 0.0, sq = 0.0;
    for (int i = 0; i < kElements; ++i) {
      m[i] = beta * m[i] + g[i];
      ref_sq += m[i] * m[i];
      const T mi = nmd_momentum_element(mt[i], this->cast(g[i]), this->cast(beta));
      EXPECT_EQ(mi, mt[i]);
      sq += static_cast<double>(mi) * mi;
    }
    // w = w (1 - lr wd) - (lr / ||m||_F) m
    const double ref_step = lr / std::sqrt(ref_sq);
    const T step = nmd_step_size(this->cast(lr), sq);
    this->expect_close(step, ref_step, ref_step);
    const T decay = decay_factor(this->cast(lr), this->cast(wd));
    this->expect_close(decay, 1.0 - lr * wd, 1.0);
    for (int i = 0; i < kElements; ++i) {
      w[i] = w[i] * (1.0 - lr * wd) - ref_step * m[i];
      wt[i] = nmd_step_element(wt[i], mt[i], step, decay);
    }
  }
  for (int i = 0; i < kElements; ++i) {
    this->expect_close(mt[i], m[i], 10.0);
    this->expect_close(wt[i], w[i], 10.0);
  }
}

TYPED_TEST(UpdateMath, AdamBiasCorrection) {
  using T = TypeParam;
  const double lr = exact<T>(0.003), b1 = exact<T>(0.9), b2 = exact<T>(0.999);
  const T wd = T(0.01);
  for (int64_t t : {1, 2, 3, 10, 100, 5000}) {
    // step = lr / (1 - b1^t), inv_sqrt_bc2 = 1 / sqrt(1 - b2^t), the powers by exp(t log b)
    const double step = lr / (1.0 - std::exp(t * std::log(b1)));
    const double inv = 1.0 / std::sqrt(1.0 - std::exp(t * std::log(b2)));
    const AdamBiasCorrection<T> bc =
        adam_bias_correction(this->cast(lr), this->cast(b1), this->cast(b2), static_cast<double>(t));
    EXPECT_NEAR(static_cast<double>(bc.step), step, 4 * std::numeric_limits<T>::epsilon() * step);
    EXPECT_NEAR(static_cast<double>(bc.inv_sqrt_bc2), inv, 4 * std::numeric_limits<T>::epsilon() * inv);
    // adam_scalars() carries the same two scalars, and AdamW's decay or Adam's L2 term.
    const AdamScalarsT<T> w = adam_scalars("test", this->cast(lr), this->cast(b1), this->cast(b2), wd, true, t);
    EXPECT_EQ(w.step, bc.step);
    EXPECT_EQ(w.inv_sqrt_bc2, bc.inv_sqrt_bc2);
    EXPECT_EQ(w.decay, decay_factor(this->cast(lr), wd));
    EXPECT_EQ(w.l2, T(0));
    const AdamScalarsT<T> l = adam_scalars("test", this->cast(lr), this->cast(b1), this->cast(b2), wd, false, t);
    EXPECT_EQ(l.decay, T(1));
    EXPECT_EQ(l.l2, wd);
  }
}

TYPED_TEST(UpdateMath, AdamAndAdamW) {
  using T = TypeParam;
  const double lr = exact<T>(0.01), b1 = exact<T>(0.9), b2 = exact<T>(0.99), wd = exact<T>(0.05);
  const double eps = exact<T>(0.1);  // large enough to show in float
  for (bool decoupled : {false, true}) {
    const std::vector<double> w0 = nonzero<T>(kElements, 6), m0 = nonzero<T>(kElements, 7),
                              v0 = nonzero<T>(kElements, 8);
    for (int i = 0; i < kElements; ++i) {
      double w = w0[i], m = m0[i], v = std::abs(v0[i]);
      T wt = this->cast(w), mt = this->cast(m), vt = this->cast(v);
      const double decay = decoupled ? 1.0 - lr * wd : 1.0, l2 = decoupled ? 0.0 : wd;
      for (int64_t t = 1; t <= kSteps; ++t) {
        const double g = nonzero<T>(kElements, 300 + t)[i];
        // g' = g + l2 w; m = b1 m + (1-b1) g'; v = b2 v + (1-b2) g'^2;
        // w = w decay - (lr / bc1) m / (sqrt(v) / sqrt(bc2) + eps)
        const double gp = g + l2 * w;
        m = b1 * m + (1 - b1) * gp;
        v = b2 * v + (1 - b2) * gp * gp;
        const double bc1 = 1.0 - std::pow(b1, static_cast<double>(t)), bc2 = 1.0 - std::pow(b2, static_cast<double>(t));
        w = w * decay - (lr / bc1) * m / (std::sqrt(v) / std::sqrt(bc2) + eps);
        // The step's scalars as a run forms them.
        const AdamScalarsT<T> k =
            adam_scalars("test", this->cast(lr), this->cast(b1), this->cast(b2), this->cast(wd), decoupled, t);
        adam_element(wt, this->cast(g), mt, vt, k.step, k.inv_sqrt_bc2, this->cast(b1), this->cast(b2), this->cast(eps),
                     k.decay, k.l2);
      }
      this->expect_close(mt, m, 4.0);
      this->expect_close(vt, v, 4.0);
      this->expect_close(wt, w, 4.0);
    }
  }
}

TYPED_TEST(UpdateMath, SignGdWithAndWithoutMomentum) {
  using T = TypeParam;
  const double lr = exact<T>(0.001), mu = exact<T>(0.9), wd = exact<T>(0.1);
  const std::vector<double> w0 = nonzero<T>(kElements, 9), m0 = nonzero<T>(kElements, 10);
  const T decay = decay_factor(this->cast(lr), this->cast(wd));
  for (int i = 0; i < kElements; ++i) {
    double w = w0[i], wm = w0[i], m = m0[i];
    T wt = this->cast(w), wmt = this->cast(wm), mt = this->cast(m);
    for (int s = 0; s < kSteps; ++s) {
      const double g = nonzero<T>(kElements, 400 + s)[i];
      // w = w (1 - lr wd) - lr sign(d), d = g or m = mu m + g
      w = w * (1.0 - lr * wd) - lr * (g > 0 ? 1.0 : -1.0);
      wt = signgd_element(wt, this->cast(g), this->cast(lr), decay);
      m = mu * m + g;
      wm = wm * (1.0 - lr * wd) - lr * (m > 0 ? 1.0 : -1.0);
      const T mi = accumulate_momentum(mt, this->cast(g), this->cast(mu));
      EXPECT_EQ(mi, mt);
      wmt = signgd_element(wmt, mi, this->cast(lr), decay);
    }
    this->expect_close(wt, w, 10.0);
    this->expect_close(mt, m, 10.0);
    this->expect_close(wmt, wm, 10.0);
  }
}

TYPED_TEST(UpdateMath, MuonMomentumPlainAndNesterov) {
  using T = TypeParam;
  const double beta = exact<T>(0.95);
  const std::vector<double> m0 = nonzero<T>(kElements, 11);
  for (bool nesterov : {false, true}) {
    for (int i = 0; i < kElements; ++i) {
      double m = m0[i], out = 0.0;
      T mt = this->cast(m), outt = T(0);
      for (int s = 0; s < kSteps; ++s) {
        const double g = nonzero<T>(kElements, 500 + s)[i];
        // m = beta m + g; out = nesterov ? g + beta m : m
        m = beta * m + g;
        out = nesterov ? g + beta * m : m;
        outt = momentum_element(mt, this->cast(g), this->cast(beta), nesterov);
      }
      this->expect_close(mt, m, 10.0);
      this->expect_close(outt, out, 10.0);
    }
  }
}

}  // namespace
}  // namespace skillrun
