// Which runs of a sweep may train together as one pack (issue 14: a run is a slice of a pack
// that one process trains with batched GEMMs). Runs may share a pack when their resolved
// configs differ only in `seed` and the optimizer (type and hyperparameters: the update phase
// runs once per type present); everything else — task, model, batch, schedule, eval, precision,
// device — fixes the shapes and the step and must be equal. A pure function of the sweep, so
// every process (a Slurm array task, `--list`) forms the same packs.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "config/experiment.h"  // pack_signature
#include "sweep/sweep.h"

namespace skillrun {

struct Pack {
  std::string signature;
  std::vector<std::size_t> runs;  // indices into Sweep::runs, in sweep order
  bool alone = false;  // one run that cannot share a pack (icl_linreg): a `skillrun run` of its own
};

// Whether a run of this resolved config may train in a pack (sparse_parity runs).
bool can_pack(const nlohmann::json& resolved_config);

// Groups runs by signature, in the order each signature first appears, then cuts each group
// into packs of at most max_runs (>= 1; the last pack of a group may be smaller). A run that
// cannot pack (can_pack) is a pack of its own, marked alone, where it comes in the sweep.
std::vector<Pack> plan_packs(const std::vector<SweepRun>& runs, std::size_t max_runs);

// How one pack whose runs need run_bytes[i] each (estimated_memory_bytes) fits budget_bytes:
// whole when their sum does, else cut into consecutive packs of at most
// max(1, budget_bytes / the largest) runs. The one split: the sweep's plan (fit_packs) and a
// pack process (`skillrun pack`, for runs that do not fit its machine) both cut by it.
struct PackFit {
  std::size_t runs_per_pack = 1;  // >= 1; the pack's size when it fits whole
  std::string note;               // empty when whole, else a line saying how it is cut
};
PackFit fit_pack(const std::vector<std::size_t>& run_bytes, std::size_t budget_bytes);

// Cuts each pack as fit_pack says (estimated_memory_bytes of each run's config), adding its
// note for each pack cut to `notes`. Deterministic, like plan_packs.
std::vector<Pack> fit_packs(const std::vector<Pack>& packs, const std::vector<SweepRun>& runs,
                            std::size_t budget_bytes, std::vector<std::string>& notes);

}  // namespace skillrun
