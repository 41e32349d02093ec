// msign(G) = U V^T for G = U S V^T: the orthogonalisation at the heart of Muon. Three ways to
// compute it: the Newton-Schulz quintic of Muon (ns5), the Polar Express schedule (one
// optimised quintic per step) and the exact SVD. This header holds the coefficient schedules
// and the dispatch; the iteration itself is Backend::msign_newton_schulz (backend/newton_schulz.cpp).
#pragma once
#include <vector>

#include "backend/backend.h"

namespace skillrun {

// `steps` copies of Muon's quintic (a, b, c) = (3.4445, -4.7750, 2.0315) (Jordan et al., 2024).
// It pushes singular values into roughly [0.7, 1.2] fast rather than converging to exactly 1.
std::vector<NsCoefficients> ns5_coefficients(int steps);

// Polar Express (Amsel et al., 2025): the five optimised quintics in order (for inputs scaled
// by 1.02 ||G||_F); steps beyond five repeat the last.
std::vector<NsCoefficients> polar_express_coefficients(int steps);

// The Newton-Schulz iterations and the normalisation X0 = G / (norm_scale ||G||_F + norm_eps) of
// ns5 or polar_express with `steps` iterations (throws std::invalid_argument for svd).
struct NsSchedule {
  std::vector<NsCoefficients> iterations;
  double norm_scale = 1.0, norm_eps = 0.0;
};
NsSchedule ns_schedule(MsignMethod method, int steps, bool fp64);

// The norm-matched control (msign: norm_matched, arXiv 2606.08388): no iteration, only the
// normalisation, with norm_scale = 1/sqrt(min(rows, cols)): out = sqrt(min(m, n)) G / (||G||_F +
// eps'), eps' = ns5's eps * sqrt(min(m, n)), so out has the Frobenius norm of msign(G) (sqrt of
// its rank) and G's singular vectors and ratios. Batched and capturable like ns5.
NsSchedule norm_matched_schedule(int rows, int cols, bool fp64);

// out_r (rows x cols) = msign(G_r) by `method` for r < runs, G_r and out_r at r * stride: one
// batched Backend::newton_schulz for the Newton-Schulz variants (`steps` iterations), one
// Backend::svd_op for svd (`steps` ignored); norm_matched is a Newton-Schulz of zero iterations
// (norm_matched_schedule; `steps` ignored). G and out may not alias. T: float, or double
// (precision fp64).
template <class T>
void msign_runs(Backend& backend, MsignMethod method, const T* G, T* out, std::size_t stride, int rows, int cols,
                int steps, int runs);
// One matrix.
template <class T>
void msign(Backend& backend, MsignMethod method, const T* G, T* out, int rows, int cols, int steps) {
  msign_runs(backend, method, G, out, 0, rows, cols, steps, 1);
}

}  // namespace skillrun
