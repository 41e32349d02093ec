// `skillrun bench --msign ROWSxCOLS`: msign timed alone. Checks the output format and the
// exit codes only; timing targets live in bench/, never in tests.
#include "cli_support.h"

#include <regex>
#include <string>

namespace {

using skillrun_test::Result;
using skillrun_test::contains;

class BenchCli : public skillrun_test::CliTest {};

TEST_F(BenchCli, MsignOnTheCpuPrintsTheMedianMicrosecondsPerCall) {
  for (const char* method : {"ns5", "polar_express", "svd"}) {
    const Result r = skillrun({"bench", "--msign", "40x12", "--msign-method", method, "--device", "cpu", "--repeats",
                               "3"});
    ASSERT_EQ(r.status, 0) << method << "\nstdout: " << r.out << "\nstderr: " << r.err;
    EXPECT_TRUE(std::regex_search(r.out, std::regex("device: cpu \\("))) << r.out;
    const std::regex timing(std::string("msign ") + method +
                            " 40x12 fp32: median [0-9]+\\.[0-9] us per call \\(min [0-9]+\\.[0-9], max [0-9]+\\.[0-9]; "
                            "3 calls after 3 warm-up\\)");
    EXPECT_TRUE(std::regex_search(r.out, timing)) << r.out;
    // The result is an msign: its mean squared singular value is near 1 (ns5 leaves them in
    // roughly [0.7, 1.2]; svd gives exactly 1).
    std::smatch m;
    ASSERT_TRUE(std::regex_search(r.out, m, std::regex("mean squared singular value of the result: ([0-9.]+)")))
        << r.out;
    const double mean_sq = std::stod(m[1].str());
    EXPECT_GT(mean_sq, 0.5) << method;
    EXPECT_LT(mean_sq, 1.5) << method;
  }
}

// --msign with --pack R: R matrices in one msign_runs call, named so in the timing line.
TEST_F(BenchCli, MsignWithPackTimesThatManyMatricesInOneCall) {
  const Result r = skillrun({"bench", "--msign", "40x12", "--pack", "3", "--msign-method", "polar_express",
                             "--device", "cpu", "--repeats", "2"});
  ASSERT_EQ(r.status, 0) << "stdout: " << r.out << "\nstderr: " << r.err;
  EXPECT_TRUE(std::regex_search(r.out, std::regex("msign polar_express 3 x 40x12 fp32: median [0-9]+\\.[0-9] us per call")))
      << r.out;
  std::smatch m;
  ASSERT_TRUE(std::regex_search(r.out, m, std::regex("mean squared singular value of the result: ([0-9.]+)"))) << r.out;
  EXPECT_GT(std::stod(m[1].str()), 0.5);
  EXPECT_LT(std::stod(m[1].str()), 1.5);
}

TEST_F(BenchCli, MalformedShapeExitsTwoWithAClearMessage) {
  for (const char* shape : {"40by12", "40x", "x12", "0x12", "40x-3", "40x12x3", "4e1x12"}) {
    const Result r = skillrun({"bench", "--msign", shape, "--device", "cpu"});
    EXPECT_EQ(r.status, 2) << shape << "\nstderr: " << r.err;
    EXPECT_NE(r.err.find("--msign: expected ROWSxCOLS"), std::string::npos) << shape << ": " << r.err;
    EXPECT_NE(r.err.find(shape), std::string::npos) << "the message should quote the bad shape: " << r.err;
    EXPECT_EQ(r.err.find("terminate called"), std::string::npos) << r.err;
  }
}

TEST_F(BenchCli, MsignWithAConfigOrWithoutEitherIsAUsageError) {
  const Result both = skillrun({"bench", "config.json", "--msign", "40x12", "--device", "cpu"});
  EXPECT_EQ(both.status, 2) << both.err;
  EXPECT_NE(both.err.find("give no CONFIG"), std::string::npos) << both.err;
  const Result neither = skillrun({"bench", "--device", "cpu"});
  EXPECT_EQ(neither.status, 2) << neither.err;
  EXPECT_NE(neither.err.find("--msign ROWSxCOLS"), std::string::npos) << neither.err;
  EXPECT_EQ(skillrun({"bench", "--msign", "40x12", "--msign-method", "ns7", "--device", "cpu"}).status, 2);
}

// bench --msign has no config: its --device, --precision and --msign-method are read by the
// config's parser all the same (one message, naming the flag), exit 2.
TEST_F(BenchCli, MsignFlagsNamingAChoiceAreReadAsTheConfigReadsThem) {
  const Result device = skillrun({"bench", "--msign", "40x12", "--device", "gpu"});
  EXPECT_EQ(device.status, 2) << device.err;
  EXPECT_TRUE(contains(device.err, "error: --device: unknown device \"gpu\" (expected one of: auto, cpu, cuda)"));
  const Result precision = skillrun({"bench", "--msign", "40x12", "--device", "cpu", "--precision", "fp16"});
  EXPECT_EQ(precision.status, 2) << precision.err;
  EXPECT_TRUE(contains(precision.err,
                       "error: --precision: unknown precision \"fp16\" (expected one of: fp32, tf32, bf16, fp64)"));
  const Result method = skillrun({"bench", "--msign", "40x12", "--device", "cpu", "--msign-method", "ns7"});
  EXPECT_EQ(method.status, 2) << method.err;
  EXPECT_TRUE(contains(method.err, "error: --msign-method: unknown msign method \"ns7\" (expected one of: ns5, "
                                   "polar_express, svd, norm_matched)"));
  // fp64 is a precision, but not one msign of fp32 matrices can be timed in.
  const Result fp64 = skillrun({"bench", "--msign", "40x12", "--device", "cpu", "--precision", "fp64"});
  EXPECT_EQ(fp64.status, 2) << fp64.err;
  EXPECT_TRUE(contains(fp64.err, "--precision fp64")) << fp64.err;
  // The CPU computes in fp32 only: a bf16 msign there is refused (registry), not mislabelled.
  const Result bf16 = skillrun({"bench", "--msign", "40x12", "--device", "cpu", "--precision", "bf16"});
  EXPECT_EQ(bf16.status, 2) << bf16.err;
  EXPECT_TRUE(contains(bf16.err, "needs the CUDA backend")) << bf16.err;
}

// --pack R: R seeds of the config as one pack beside the config alone, with the figures the
// packed-runs benchmark compares (per-run microseconds per step, aggregate run-steps/s).
TEST_F(BenchCli, PackPrintsTheRunStepsPerSecondOfThePackAndOfOneRunAlone) {
  const Result r = skillrun({"bench", std::string(SKILLRUN_SOURCE_DIR) + "/configs/ci/tiny.json", "--pack", "3",
                             "--steps", "3", "--warmup", "1", "--device", "cpu"});
  ASSERT_EQ(r.status, 0) << r.err;
  for (const char* part : {"pack of 3", "alone", "run-steps/s", "aggregate speed-up of the pack over one run alone"})
    EXPECT_NE(r.out.find(part), std::string::npos) << part << " not in\n" << r.out;
  EXPECT_EQ(skillrun({"bench", std::string(SKILLRUN_SOURCE_DIR) + "/configs/ci/tiny.json", "--pack", "0",
                      "--device", "cpu"}).status, 2);
}

// eval.spectra_every > 0: the spectra's cost per eval row and the per-step copy of the weights.
TEST_F(BenchCli, SpectraOnPrintsTheirCostPerEvalRowAndPerStep) {
  const std::string config = std::string(SKILLRUN_SOURCE_DIR) + "/configs/ci/tiny.json";
  const Result on = skillrun({"bench", config, "--steps", "3", "--warmup", "1", "--device", "cpu", "--set",
                              "eval.spectra_every=1"});
  ASSERT_EQ(on.status, 0) << on.err;
  EXPECT_TRUE(contains(on.out, "ms per spectra eval row (eval.spectra_every = 1)")) << on.out;
  EXPECT_TRUE(contains(on.out, "ms per step (the weights kept for the update)")) << on.out;
  const Result off = skillrun({"bench", config, "--steps", "3", "--warmup", "1", "--device", "cpu"});
  ASSERT_EQ(off.status, 0) << off.err;
  EXPECT_FALSE(contains(off.out, "spectra")) << off.out;
}

}  // namespace
