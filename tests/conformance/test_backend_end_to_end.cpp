// End to end on every backend present: the first 20 steps of the paper's Fig. 4 Muon config
// (batch reduced to 1000) agree between the CPU and CUDA backends, and the CI config learns
// every subtask on the GPU. Plus the registry's device and precision rules, and the CUDA
// backend's error reporting (bad labels, out of memory). GPU cases skip without a device.
#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <spdlog/spdlog.h>

#include "backend/backend.h"
#include "backend/cpu/cpu_backend.h"
#include "backends_under_test.h"
#include "support/test_data.h"
#include "cli/devices.h"
#include "core/error.h"
#include "train/trainer.h"

namespace skillrun::conformance {
namespace {

namespace fs = std::filesystem;

#define SKIP_WITHOUT_CUDA()                                     \
  do {                                                          \
    const std::string why_ = cuda_unavailable();                \
    if (!why_.empty()) GTEST_SKIP() << why_;                    \
  } while (0)

std::string config_path(const std::string& relative) { return std::string(SKILLRUN_SOURCE_DIR) + "/" + relative; }

using testing::normalised_error;

// ---- step graphs -------------------------------------------------------------------------------

// A run whose untimed steps replay a captured CUDA graph follows the eager run: the same batches
// (the data kernel reads the step from the device counter) and the same updates (Adam's t too).
// The bias corrections are formed on the device in the replay (CUDA pow, within 2 ulp of the
// host's in double), so the bound allows the rare last-bit difference they can make.
TEST(StepGraphs, ReplayedStepsFollowTheEagerRun) {
  SKIP_WITHOUT_CUDA();
  spdlog::set_level(spdlog::level::warn);
  for (const char* file : {"configs/paper/fig4_adam_w250.json", "configs/paper/fig4_muon_w250.json"}) {
    const ExperimentConfig config = load_experiment(config_path(file), {"train.batch_size=1000"});
    auto graph_backend = make_backend(DeviceChoice::Cuda);
    auto eager_backend = make_backend(DeviceChoice::Cuda);
    Trainer graphed(*graph_backend, config);
    ::setenv("SKILLRUN_CUDA_GRAPH", "0", 1);
    Trainer eager(*eager_backend, config);
    ::unsetenv("SKILLRUN_CUDA_GRAPH");
    // Mid-run a timed (eager) step, an eval and a train-loss read, as runs and bench do them:
    // the counter must be reset for the next replay, and the evals' scratch use must not
    // disturb the graph's buffers.
    for (int64_t s = 0; s < 20; ++s) {
      if (s == 10) {
        PhaseTimes times_a, times_b;
        graphed.train_step(s, &times_a);
        eager.train_step(s, &times_b);
        EXPECT_EQ(graphed.evaluate().loss_bits, eager.evaluate().loss_bits) << file;
        EXPECT_NEAR(graphed.last_train_loss_bits(), eager.last_train_loss_bits(), 1e-6);
        continue;
      }
      graphed.train_step(s);
      eager.train_step(s);
    }
    EXPECT_TRUE(graphed.step_graph_active()) << file << ": the step was not captured";
    EXPECT_FALSE(eager.step_graph_active());
    EXPECT_EQ(graphed.optimizer().steps_taken(), 20);
    // Compared here, at step 19 on both sides: the resume part below steps the eager trainer on
    // to 25, after which its loss is no longer the graphed trainer's to compare with.
    EXPECT_NEAR(graphed.last_train_loss_bits(), eager.last_train_loss_bits(), 1e-6) << file;
    // A resumed run (a new trainer restored from a snapshot) captures its own graph and goes on.
    Trainer resumed(*graph_backend, config);
    resumed.restore(graphed.snapshot(20, 0.0, std::vector<std::optional<int64_t>>(config.task.n_tasks)));
    for (int64_t s = 20; s < 26; ++s) {
      resumed.train_step(s);
      eager.train_step(s);
    }
    EXPECT_TRUE(resumed.step_graph_active());
    EXPECT_NEAR(resumed.last_train_loss_bits(), eager.last_train_loss_bits(), 1e-5) << file;
    for (std::size_t i = 0; i < graphed.model().parameters().size(); ++i) {
      const auto a = resumed.model().parameters()[i].value.download();
      const auto b = eager.model().parameters()[i].value.download();
      EXPECT_LE(normalised_error(a, b), 1e-5) << file << " parameter " << i;
    }
  }
}

// ---- end to end -------------------------------------------------------------------------------

// 20 Muon steps (NS5 on the hidden matrix, Adam on the rest) from the same initial weights and
// the bit-identical batches. The backends differ only in gemm summation order (~1e-7 relative
// per product); Newton-Schulz amplifies that to <= ~1e-4 in the update direction (see
// test_backend_ops.cpp), and each step moves the weights by lr = 0.01 times that direction, so
// after 20 steps the weights can differ by about 20 * 0.01 * 1e-4 relative to O(1) weights, far
// below the 1e-3 bound (50x margin); the per-step training loss (mean over 1000 samples) to 1e-4 relative.
// `config` for 20 steps on the CPU and on CUDA: the per-step train loss to 1e-4 relative and
// every parameter to 1e-3 (normalised) at the end. `what` names the case in the messages.
void expect_first_20_steps_agree(const ExperimentConfig& config, const std::string& what) {
  CpuBackend cpu;
  auto gpu = make_backend(DeviceChoice::Cuda);
  Trainer on_cpu(cpu, config), on_gpu(*gpu, config);
  for (int64_t step = 0; step < 20; ++step) {
    on_cpu.train_step(step);
    on_gpu.train_step(step);
    const double ref = on_cpu.last_train_loss_bits(), got = on_gpu.last_train_loss_bits();
    EXPECT_NEAR(got, ref, 1e-4 * std::abs(ref)) << what << ": train loss at step " << step;
  }
  auto& p_cpu = on_cpu.model().parameters();
  auto& p_gpu = on_gpu.model().parameters();
  ASSERT_EQ(p_cpu.size(), p_gpu.size()) << what;
  for (std::size_t i = 0; i < p_cpu.size(); ++i) {
    EXPECT_LE(normalised_error(p_gpu[i].value.download(), p_cpu[i].value.download()), 1e-3)
        << what << ": " << p_cpu[i].name;
  }
}

TEST(EndToEnd, Fig4MuonFirst20StepsAgreeCpuVsCuda) {
  SKIP_WITHOUT_CUDA();
  spdlog::set_level(spdlog::level::warn);
  expect_first_20_steps_agree(
      load_experiment(config_path("configs/paper/fig4_muon_w250.json"), {"train.batch_size=1000"}), "fig4 muon");
}

// assoc_memory (configs/ci/assoc_tiny.json with label noise): GD and Muon (exact msign: the
// polar factor of the same gradient up to gemm rounding), 20 steps on the CPU and on CUDA:
// bit-identical batches, the per-step train loss to 1e-4 relative, W to 1e-3 (the bounds of
// the MLP case above). Not SignGD: a gradient entry within rounding of 0 may take opposite
// signs on the two backends, a difference of 2 lr in that entry that no tolerance on W bounds
// (its elementwise update is held to the CPU's by test_backend_ops.cpp).
TEST(EndToEnd, AssocMemoryFirst20StepsAgreeCpuVsCuda) {
  SKIP_WITHOUT_CUDA();
  spdlog::set_level(spdlog::level::warn);
  for (const char* optimizer : {R"(optimizer={"type":"sgd","lr":8})",
                                R"(optimizer={"type":"muon","lr":0.05,"momentum":0,"msign":"svd","muon_params":"all_weights"})"}) {
    expect_first_20_steps_agree(
        load_experiment(config_path("configs/ci/assoc_tiny.json"), {"task.label_noise=0.1", optimizer}), optimizer);
  }
}

// A pack on CUDA (batched GEMMs over runs of one seed, a graph over the whole pack) follows
// each of its runs trained alone on CUDA for 20 steps: mixed seeds, learning rates and
// optimizer types. Same products, but cuBLAS may pick another kernel for a strided batch than
// for one GEMM (another summation order, ~1e-7 relative per product), so the bound is the
// CPU-vs-CUDA one above: per-step train loss to 1e-4 relative, weights to 1e-3.
TEST(PacksOnCuda, FollowEachRunAloneFor20Steps) {
  SKIP_WITHOUT_CUDA();
  spdlog::set_level(spdlog::level::warn);
  const std::string file = config_path("configs/paper/fig4_muon_w250.json");
  const std::vector<ExperimentConfig> configs = {
      load_experiment(file, {"train.batch_size=1000", "seed=0"}),
      load_experiment(file, {"train.batch_size=1000", "seed=0", R"(optimizer={"type":"adam","lr":0.001})"}),
      load_experiment(file, {"train.batch_size=1000", "seed=1", R"(optimizer={"type":"nmd","lr":0.05})"}),
      load_experiment(file, {"train.batch_size=1000", "seed=0", "optimizer.lr=0.02"}),
  };
  auto gpu = make_backend(DeviceChoice::Cuda);
  std::vector<std::vector<double>> alone_losses(configs.size());
  std::vector<std::vector<std::vector<float>>> alone_weights(configs.size());
  for (std::size_t i = 0; i < configs.size(); ++i) {
    Trainer alone(*gpu, configs[i]);
    for (int64_t step = 0; step < 20; ++step) {
      alone.train_step(step);
      alone_losses[i].push_back(alone.last_train_loss_bits());
    }
    for (const Parameter& p : alone.model().parameters()) alone_weights[i].push_back(p.value.download());
  }
  Trainer pack(*gpu, configs);
  for (int64_t step = 0; step < 20; ++step) {
    pack.train_step(step);
    for (std::size_t i = 0; i < configs.size(); ++i) {
      const double ref = alone_losses[i][static_cast<std::size_t>(step)];
      EXPECT_NEAR(pack.last_train_loss_bits(static_cast<int>(i)), ref, 1e-4 * std::abs(ref))
          << "run " << i << " at step " << step;
    }
  }
  EXPECT_TRUE(pack.step_graph_active()) << "the pack's step was not captured";
  for (std::size_t i = 0; i < configs.size(); ++i) {
    const auto& params = pack.model().parameters(pack.slot(static_cast<int>(i)));
    for (std::size_t j = 0; j < params.size(); ++j)
      EXPECT_LE(normalised_error(params[j].value.download(), alone_weights[i][j]), 1e-3) << "run " << i << " " << j;
  }
}

TEST(EndToEnd, TinyConfigLearnsEverySubtaskOnCuda) {
  SKIP_WITHOUT_CUDA();
  spdlog::set_level(spdlog::level::warn);
  const ExperimentConfig config = load_experiment(config_path("configs/ci/tiny.json"), {});
  const fs::path dir = fs::temp_directory_path() / ("skillrun_cuda_tiny_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  auto gpu = make_backend(DeviceChoice::Cuda);
  RunSummary s;
  {
    RunDirectory run_dir(dir);
    run_dir.write_config(to_json(config));
    Trainer trainer(*gpu, config);
    Progress progress(ProgressMode::Off, config.train.max_steps, config.task.n_tasks);
    s = trainer.run(run_dir, progress);
  }
  fs::remove_all(dir);
  EXPECT_EQ(s.status, RunStatus::Converged) << s.message;
  for (std::size_t k = 0; k < s.T_k.size(); ++k) EXPECT_TRUE(s.T_k[k].has_value()) << "subtask " << k;
  EXPECT_EQ(s.device.rfind("cuda:", 0), 0u) << s.device;
}

// ---- registry: device and precision ---------------------------------------------------------

TEST(Registry, CpuBackendRejectsReducedPrecision) {
  // A tf32/bf16 run on the CPU would be an fp32 run under another label: refused, exit 2.
  for (Precision p : {Precision::Tf32, Precision::Bf16}) {
    try {
      make_backend(DeviceChoice::Cpu, p);
      ADD_FAILURE() << "no error for " << name(p);
    } catch (const UsageError& e) {
      EXPECT_NE(std::string(e.what()).find("needs the CUDA backend"), std::string::npos) << e.what();
    }
  }
  EXPECT_TRUE(make_backend(DeviceChoice::Cpu, Precision::Fp32)->is_cpu());
}

TEST(Registry, CudaWithoutUsableDeviceIsAUsageError) {
  if (cuda_backend_available()) GTEST_SKIP() << "a CUDA device is present";
  try {
    make_backend(DeviceChoice::Cuda);
    ADD_FAILURE() << "no error";
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("device \"cuda\" requested"), std::string::npos) << e.what();
  }
}

TEST(Registry, AutoFallsBackToCpuWithoutDevice) {
  if (cuda_backend_available()) GTEST_SKIP() << "a CUDA device is present";
  spdlog::set_level(spdlog::level::warn);
  EXPECT_TRUE(make_backend(DeviceChoice::Auto)->is_cpu());
}

TEST(Registry, AutoPicksCudaWhenPresent) {
  SKIP_WITHOUT_CUDA();
  EXPECT_FALSE(make_backend(DeviceChoice::Auto)->is_cpu());
}

TEST(Registry, DevicesCommandListsCpuAndWhatAutoPicks) {
  ::testing::internal::CaptureStdout();
  EXPECT_EQ(cmd_devices(), 0);
  const std::string out = ::testing::internal::GetCapturedStdout();
  EXPECT_NE(out.find("cpu "), std::string::npos) << out;
  EXPECT_NE(out.find("cuda"), std::string::npos) << out;  // a device line, or why there is none
  EXPECT_NE(out.find(cuda_backend_available() ? "--device auto picks: cuda:0" : "--device auto picks: cpu"),
            std::string::npos)
      << out;
}

// ---- CUDA error reporting --------------------------------------------------------------------

TEST(CudaErrors, OutOfMemoryNamesTheByteCount) {
  SKIP_WITHOUT_CUDA();
  auto gpu = make_backend(DeviceChoice::Cuda);
  const std::size_t huge = std::size_t{1} << 50;  // 1 PiB
  try {
    gpu->allocate(huge);
    ADD_FAILURE() << "1 PiB allocated";
  } catch (const RuntimeError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("out of device memory"), std::string::npos) << what;
    EXPECT_NE(what.find(std::to_string(huge)), std::string::npos) << what;
  }
  // The backend stays usable after the failure.
  Buffer<float> ok(*gpu, 16);
  gpu->fill(ok.data(), 16, 1.0f);
  EXPECT_EQ(ok.download(), std::vector<float>(16, 1.0f));
}

TEST(CudaErrors, BadLabelThrowsAtTheNextSync) {
  SKIP_WITHOUT_CUDA();
  auto gpu = make_backend(DeviceChoice::Cuda);
  Buffer<float> logits(*gpu, 4), loss(*gpu, 2), correct(*gpu, 2);
  Buffer<int32_t> labels(*gpu, 2);
  logits.upload(std::vector<float>{0.1f, 0.2f, 0.3f, 0.4f});
  labels.upload(std::vector<int32_t>{1, 2});  // 2 is outside [0, 2)
  gpu->cross_entropy(logits.data(), labels.data(), 2, 2, loss.data(), correct.data(), nullptr, 1.0f);
  EXPECT_THROW(gpu->synchronize(), std::out_of_range);
  EXPECT_NO_THROW(gpu->synchronize());  // reported once
}

TEST(CudaErrors, BadGemmShapeIsRejectedBeforeCublas) {
  SKIP_WITHOUT_CUDA();
  auto gpu = make_backend(DeviceChoice::Cuda);
  Buffer<float> a(*gpu, 16);
  EXPECT_THROW(gpu->gemm(Trans::No, Trans::No, 4, 4, 4, 1.0f, a.data(), 3, a.data(), 4, 0.0f, a.data(), 4),
               std::invalid_argument);
}

}  // namespace
}  // namespace skillrun::conformance
