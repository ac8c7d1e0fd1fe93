// The Hessian eigen-solver on networks, in float64: LOBPCG's top eigenpairs against the dense
// eigendecomposition of the explicitly formed Hessian of a small MLP and a small CNN, warm starts
// after a parameter change, generalized eigenvectors with a diagonal P, and `cflow hessian --dense`.
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <string>
#include <tuple>
#include <vector>

#include "cflow/runtime/blas.h"
#include "cflow/solvers/dense_hessian.h"
#include "cflow/engine/gradcheck.h"
#include "cflow/solvers/eigen_tracker.h"
#include "cflow/solvers/lobpcg.h"
#include "cflow/engine/network.h"
#include "host/cli/cli.h"
#include "test_support.h"

namespace cflow {
namespace {

using testing::random_vector;

ModelSpec small_spec(Architecture arch) {
  ModelSpec spec;
  spec.arch = arch;
  spec.activation = Activation::gelu;
  spec.classes = 3;
  if (arch == Architecture::mlp) {
    spec.loss = LossKind::mse;
    spec.width = 6;
    spec.depth = 2;
    spec.input = {5, 1, 1};  // d = 99
  } else {
    spec.loss = LossKind::ce;
    spec.width = 2;
    spec.input = {2, 8, 8};  // d = 263
  }
  return spec;
}

Network<double> make_network(const Device& dev, const ModelSpec& spec, index_t n = 24) {
  const RandomData data = random_data(spec, n, 5);
  return Network<double>(dev, spec, data.inputs, data.targets);
}

// Initial weights scaled up so the activations leave their linear regime and the spectrum spreads.
Buffer<double> point(Network<double>& net, std::uint64_t seed = 3) {
  auto w = net.initial_parameters(seed);
  for (double& x : w) x *= 1.5;
  return Buffer<double>(net.device(), std::span<const double>(w));
}

BlockOperator<double> hessian_of(Network<double>& net, const double* w) {
  return [&net, w](const double* V, index_t m, double* HV) { net.hvp(w, V, m, HV); };
}

double column_norm(const std::vector<double>& x, index_t d, index_t j) {
  double s = 0;
  for (index_t i = 0; i < d; ++i) s += x[std::size_t(i + j * d)] * x[std::size_t(i + j * d)];
  return std::sqrt(s);
}

// ‖H u_j − λ_j P u_j‖ / (max(|λ_j|, 1e-3 max|λ|) ‖P u_j‖) per column, with H from the network and P
// given by its diagonal (empty: I).
std::vector<double> eigen_residuals(Network<double>& net, const double* w, const LobpcgResult<double>& r,
                                    const std::vector<double>& p) {
  const Device& dev = net.device();
  const index_t d = net.dim(), k = index_t(r.eigenvalues.size());
  Buffer<double> HU(dev, d * k);
  net.hvp(w, r.U.data(), k, HU.data());
  const auto u = r.U.to_host(), hu = HU.to_host();
  double largest = 0;
  for (double l : r.eigenvalues) largest = std::max(largest, std::abs(l));
  std::vector<double> residuals;
  for (index_t j = 0; j < k; ++j) {
    std::vector<double> difference(static_cast<std::size_t>(d)), pu(static_cast<std::size_t>(d));
    for (index_t i = 0; i < d; ++i) {
      pu[std::size_t(i)] = (p.empty() ? 1.0 : p[std::size_t(i)]) * u[std::size_t(i + j * d)];
      difference[std::size_t(i)] = hu[std::size_t(i + j * d)] - r.eigenvalues[std::size_t(j)] * pu[std::size_t(i)];
    }
    const double scale = std::max(std::abs(r.eigenvalues[std::size_t(j)]), 1e-3 * largest);
    residuals.push_back(column_norm(difference, d, 0) / (scale * column_norm(pu, d, 0)));
  }
  return residuals;
}

// The top k dense eigenvalues of the Hessian at w (descending).
std::vector<double> dense_top(Network<double>& net, const double* w, index_t k) {
  DenseHessian<double> H = dense_hessian(net, w, 32);
  DenseEigen<double> eigen = dense_eigen(net.device(), net.dim(), H.matrix, 0);
  eigen.eigenvalues.resize(std::size_t(k));
  return eigen.eigenvalues;
}

using Case = std::tuple<Backend, Architecture>;

class NetworkHessian : public ::testing::TestWithParam<Case> {
 protected:
  void SetUp() override {
    const auto [backend, arch] = GetParam();
    std::string why;
    if (backend == Backend::cuda && !cuda_available(&why)) GTEST_SKIP() << "CUDA backend not tested here: " << why;
    device_.emplace(Device::open(backend == Backend::cuda ? "cuda" : "cpu"));
    spec_ = small_spec(arch);
  }
  const Device& device() const { return *device_; }
  const ModelSpec& spec() const { return spec_; }

 private:
  std::optional<Device> device_;
  ModelSpec spec_;
};

TEST_P(NetworkHessian, DenseHessianIsSymmetricToRounding) {
  auto net = make_network(device(), spec());
  auto w = point(net);
  const index_t d = net.dim();
  // The columns He_j one at a time on the host side of the test, as the reference for the builder.
  std::vector<double> identity(std::size_t(d * d), 0.0);
  for (index_t i = 0; i < d; ++i) identity[std::size_t(i + i * d)] = 1;
  Buffer<double> E(device(), std::span<const double>(identity)), HE(device(), d * d);
  net.hvp(w.data(), E.data(), d, HE.data());
  const auto raw = HE.to_host();
  double largest = 0, asymmetry = 0, frobenius = 0, skew = 0;
  for (index_t j = 0; j < d; ++j)
    for (index_t i = 0; i < d; ++i) {
      const double a = raw[std::size_t(i + j * d)], b = raw[std::size_t(j + i * d)];
      largest = std::max(largest, std::abs(a));
      asymmetry = std::max(asymmetry, std::abs(a - b));
      frobenius += a * a;
      skew += (a - b) * (a - b);
    }
  ASSERT_GT(largest, 0);
  EXPECT_LE(asymmetry, 1e-13 * largest) << "H_ij − H_ji beyond rounding";

  // Odd block size: the last block is partial.
  const DenseHessian<double> built = dense_hessian(net, w.data(), 7);
  EXPECT_EQ(built.operator_calls, (d + 6) / 7);
  EXPECT_EQ(built.operator_applications, d);
  // The builder's measure, ‖H − Hᵀ‖_F/‖H‖_F, is itself at rounding level: only its size is checked.
  EXPECT_LE(std::sqrt(skew / frobenius), 1e-13);
  EXPECT_LE(built.asymmetry, 1e-13);
  const auto sym = built.matrix.to_host();
  for (index_t j = 0; j < d; ++j)
    for (index_t i = 0; i < d; ++i) {
      ASSERT_EQ(sym[std::size_t(i + j * d)], sym[std::size_t(j + i * d)]) << "not symmetrized at " << i << "," << j;
      ASSERT_NEAR(sym[std::size_t(i + j * d)], 0.5 * (raw[std::size_t(i + j * d)] + raw[std::size_t(j + i * d)]),
                  1e-14 * largest);
    }
}

TEST_P(NetworkHessian, LobpcgMatchesDenseEigendecomposition) {
  auto net = make_network(device(), spec());
  auto w = point(net);
  const index_t k = 4;
  const auto result = lobpcg<double>(device(), net.dim(), hessian_of(net, w.data()), nullptr,
                                     {.k = int(k), .tolerance = 1e-10, .max_iterations = 300, .seed = 1});
  ASSERT_TRUE(result.converged);
  const auto expected = dense_top(net, w.data(), k);
  for (index_t j = 0; j < k; ++j) {
    const double scale = std::max(std::abs(expected[std::size_t(j)]), 1e-3 * std::abs(expected[0]));
    EXPECT_NEAR(result.eigenvalues[std::size_t(j)], expected[std::size_t(j)], 1e-8 * scale) << "eigenvalue " << j;
  }
  EXPECT_LE(max_relative_difference<double>(result.eigenvalues, expected), 1e-8);
  for (double r : eigen_residuals(net, w.data(), result, {})) EXPECT_LE(r, 1e-9);
  ::testing::Test::RecordProperty("iterations", result.iterations);
  ::testing::Test::RecordProperty("hvps", result.operator_applications);
}

// The largest relative residual ‖H y_j − θ_j y_j‖ / |θ_j|, θ_j = y_jᵀ H y_j, of the orthonormal d×k
// block Y for the Hessian at w: how far from converged stale vectors are at a new point.
double stale_residual(Network<double>& net, const double* w, const Buffer<double>& Y, index_t k) {
  const index_t d = net.dim();
  Buffer<double> HY(net.device(), d * k);
  net.hvp(w, Y.data(), k, HY.data());
  const auto y = Y.to_host(), hy = HY.to_host();
  double worst = 0;
  for (index_t j = 0; j < k; ++j) {
    double theta = 0, residual = 0;
    for (index_t i = 0; i < d; ++i) theta += y[std::size_t(i + j * d)] * hy[std::size_t(i + j * d)];
    for (index_t i = 0; i < d; ++i)
      residual += std::pow(hy[std::size_t(i + j * d)] - theta * y[std::size_t(i + j * d)], 2);
    worst = std::max(worst, std::sqrt(residual) / std::abs(theta));
  }
  return worst;
}

TEST_P(NetworkHessian, WarmStartAfterASmallParameterChangeConvergesInTwoIterations) {
  auto net = make_network(device(), spec());
  auto w = point(net);
  // k = 2: both models have a clear gap after λ₂ (the MLP's λ₃/λ₄ ≈ 1.14 would slow the third column
  // to 4 iterations from the same start).
  const index_t d = net.dim(), k = 2;
  const double tolerance = 1e-8;
  const LobpcgOptions options{.k = int(k), .tolerance = tolerance, .max_iterations = 300, .seed = 2};
  const auto cold = lobpcg<double>(device(), d, hessian_of(net, w.data()), nullptr, options);
  ASSERT_TRUE(cold.converged);

  // A small gradient step w' = w − η ∇L(w): "small" made precise as the step that leaves the
  // converged vectors 10× the tolerance away from converged at w'. The stale residual is linear in η
  // for small η, so one probe step sets the scale.
  Buffer<double> gradient(device(), d), moved(device(), d);
  net.value_grad(w.data(), gradient.data());
  const auto step = [&](double eta) {
    moved.copy_from(w);
    blas::axpy(device(), d, -eta, gradient.data(), moved.data());
    return stale_residual(net, moved.data(), cold.Y, k);
  };
  const double probe = 1e-4 / cold.eigenvalues[0];
  const double eta = probe * 10 * tolerance / step(probe);
  const double stale = step(eta);
  EXPECT_GT(stale, 3 * tolerance) << "the step must leave the old vectors unconverged";
  EXPECT_LT(stale, 30 * tolerance);

  const auto warm = lobpcg<double>(device(), d, hessian_of(net, moved.data()), nullptr, options, cold.Y.data(), k);
  EXPECT_TRUE(warm.converged);
  EXPECT_GE(warm.iterations, 1);
  EXPECT_LE(warm.iterations, 2);
  EXPECT_LT(warm.operator_applications, cold.operator_applications / 3);
  // The warm solution is the new point's: to rounding against the dense eigenvalues there, while the
  // old eigenvalues are measurably off.
  const auto expected = dense_top(net, moved.data(), k);
  EXPECT_LE(max_relative_difference<double>(warm.eigenvalues, expected), 1e-12);
  EXPECT_GT(max_relative_difference<double>(cold.eigenvalues, expected), 1e-10) << "the step changed nothing";
  ::testing::Test::RecordProperty("cold_iterations", cold.iterations);
  ::testing::Test::RecordProperty("warm_iterations", warm.iterations);
  ::testing::Test::RecordProperty("cold_hvps", cold.operator_applications);
  ::testing::Test::RecordProperty("warm_hvps", warm.operator_applications);
}

// Along three gradient steps the tracker's third solve starts from the extrapolation 2Y − Y′
// (docs/design.md §5.3); what it returns is still the new point's top of the spectrum, to the
// dense eigendecomposition's rounding, with every pair within the tolerance.
TEST_P(NetworkHessian, ExtrapolatedTrackerMatchesTheDenseSpectrumAlongGradientSteps) {
  auto net = make_network(device(), spec());
  auto w = point(net);
  const index_t d = net.dim(), k = 2;
  const double tolerance = 1e-8;
  EigenTracker<double> tracker(device(), d,
                               {.initial_k = int(k), .track_threshold = std::nullopt, .tolerance = tolerance,
                                .max_iterations = 300, .seed = 3});
  Buffer<double> gradient(device(), d);
  for (int solve = 0; solve < 3; ++solve) {
    if (solve > 0) {
      net.value_grad(w.data(), gradient.data());
      blas::axpy(device(), d, -0.1, gradient.data(), w.data());
    }
    const EigenSolveReport& report = tracker.solve(hessian_of(net, w.data()), nullptr);
    ASSERT_TRUE(report.converged) << "solve " << solve;
    for (double residual : report.residuals) EXPECT_LE(residual, tolerance) << "solve " << solve;
  }
  const std::vector<double> tracked(tracker.eigenvalues().begin(), tracker.eigenvalues().end());
  EXPECT_LE(max_relative_difference<double>(tracked, dense_top(net, w.data(), k)), 1e-12);
}

TEST_P(NetworkHessian, GeneralizedEigenvectorsWithADiagonalPreconditioner) {
  auto net = make_network(device(), spec());
  auto w = point(net);
  const index_t d = net.dim(), k = 3;
  std::vector<double> p = random_vector<double>(std::size_t(d), 17, -1, 1);
  for (double& x : p) x = std::exp(x);
  Buffer<double> p_device(device(), std::span<const double>(p));
  const auto result = lobpcg<double>(device(), d, hessian_of(net, w.data()), p_device.data(),
                                     {.k = int(k), .tolerance = 1e-10, .max_iterations = 300, .seed = 3});
  ASSERT_TRUE(result.converged);

  // The reference: the dense A = P^{-1/2} H P^{-1/2}, formed through the composed operator.
  Buffer<double> scaled(device(), d * 32);
  const BlockOperator<double> A = [&](const double* V, index_t m, double* AV) {
    apply_inverse_sqrt_diagonal(device(), d, m, p_device.data(), V, scaled.data());
    net.hvp(w.data(), scaled.data(), m, AV);
    apply_inverse_sqrt_diagonal(device(), d, m, p_device.data(), AV, AV);
  };
  DenseHessian<double> dense = dense_hessian(device(), d, A, 32);
  EXPECT_LE(dense.asymmetry, 1e-13);
  auto expected = dense_eigen(device(), d, dense.matrix, 0).eigenvalues;
  expected.resize(std::size_t(k));
  EXPECT_LE(max_relative_difference<double>(result.eigenvalues, expected), 1e-8);

  // H U = P U Λ on the network itself, and Uᵀ P U = I.
  for (double r : eigen_residuals(net, w.data(), result, p)) EXPECT_LE(r, 1e-9);
  const auto u = result.U.to_host();
  for (index_t a = 0; a < k; ++a)
    for (index_t b = 0; b < k; ++b) {
      double upu = 0;
      for (index_t i = 0; i < d; ++i) upu += u[std::size_t(i + a * d)] * p[std::size_t(i)] * u[std::size_t(i + b * d)];
      EXPECT_NEAR(upu, a == b ? 1.0 : 0.0, 1e-12) << "UᵀPU at " << a << "," << b;
    }
}

std::string case_name(const ::testing::TestParamInfo<Case>& info) {
  const auto [backend, arch] = info.param;
  return std::string(backend == Backend::cuda ? "cuda" : "cpu") + "_" + to_string(arch);
}

INSTANTIATE_TEST_SUITE_P(Networks, NetworkHessian,
                         ::testing::Combine(::testing::Values(Backend::cpu, Backend::cuda),
                                            ::testing::Values(Architecture::mlp, Architecture::cnn)),
                         case_name);

// ---- `cflow hessian`, run in-process through the CLI's own parser and handler ---------------------

struct CliRun {
  int exit_code;
  std::string out, err;
};

CliRun run_cli(std::vector<std::string> args) {
  CLI::App app{"cflow"};
  app.require_subcommand(1);
  cli::register_commands(app);
  args.insert(args.begin(), "cflow");
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  ::testing::internal::CaptureStdout();
  ::testing::internal::CaptureStderr();
  int code = 2;
  try {
    app.parse(int(argv.size()), argv.data());
    code = cli::run_selected(app);
  } catch (const CLI::ParseError&) {
    code = 2;
  }
  CliRun run{code, ::testing::internal::GetCapturedStdout(), ::testing::internal::GetCapturedStderr()};
  return run;
}

class HessianCli : public testing::BackendTest {
 protected:
  std::string device_flag() const { return GetParam() == Backend::cuda ? "cuda" : "cpu"; }
};

TEST_P(HessianCli, DenseComparisonAgreesOnATinyModel) {
  for (const std::string arch : {"mlp", "cnn"}) {
    const CliRun run = run_cli({"hessian", "--arch", arch, "--width", "3", "--n", "16", "--top", "3", "--dense",
                                "--json", "--device", device_flag()});
    ASSERT_EQ(run.exit_code, 0) << run.out << run.err;
    const auto out = nlohmann::json::parse(run.out);
    EXPECT_TRUE(out["converged"].get<bool>());
    EXPECT_TRUE(out["dense"]["agrees"].get<bool>());
    const auto lobpcg_values = out["eigenvalues"].get<std::vector<double>>();
    const auto dense_values = out["dense"]["eigenvalues"].get<std::vector<double>>();
    ASSERT_EQ(lobpcg_values.size(), 3u);
    ASSERT_EQ(dense_values.size(), 3u);
    EXPECT_LE(out["dense"]["max_relative_difference"].get<double>(), 1e-6);
    EXPECT_LE(max_relative_difference<double>(lobpcg_values, dense_values), 1e-6);
    EXPECT_GE(dense_values[0], dense_values[1]);
    EXPECT_EQ(out["dense"]["hvps"].get<index_t>(), out["parameters"].get<index_t>());
    EXPECT_GT(out["hvps"].get<int>(), 0);
  }
}

TEST_P(HessianCli, TextOutputFloat32AndDataSets) {
  const CliRun text = run_cli({"hessian", "--width", "4", "--n", "12", "--top", "2", "--dense", "--dtype", "f32",
                               "--device", device_flag()});
  ASSERT_EQ(text.exit_code, 0) << text.out << text.err;
  EXPECT_NE(text.out.find("float32"), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("agree"), std::string::npos) << text.out;
  const CliRun data = run_cli({"hessian", "--width", "4", "--data", "gaussian", "--classes", "3", "--n", "30",
                               "--top", "2", "--dense", "--json", "--device", device_flag()});
  ASSERT_EQ(data.exit_code, 0) << data.out << data.err;
  EXPECT_EQ(nlohmann::json::parse(data.out)["data"].get<std::string>(), "gaussian");
}

TEST_P(HessianCli, FailureExitCodes) {
  // --dense on a model above the size limit: refused as bad usage before any work.
  const CliRun large = run_cli({"hessian", "--width", "128", "--n", "4", "--dense", "--device", device_flag()});
  EXPECT_EQ(large.exit_code, 2);
  EXPECT_NE(large.err.find("limit of 5000"), std::string::npos) << large.err;
  // A solve that cannot converge in time is a failed check.
  const CliRun unconverged = run_cli({"hessian", "--width", "4", "--n", "8", "--top", "2", "--tol", "1e-14",
                                      "--max-iterations", "1", "--device", device_flag()});
  EXPECT_EQ(unconverged.exit_code, 1);
  EXPECT_NE(unconverged.out.find("NOT converged"), std::string::npos) << unconverged.out;
  EXPECT_NE(unconverged.err.find("did not converge"), std::string::npos) << unconverged.err;
}

TEST_P(HessianCli, TransformerOnTheSortingTaskAgreesWithDense) {
  const CliRun run = run_cli({"hessian", "--arch", "transformer", "--data", "sorting", "--width", "4", "--depth", "1",
                              "--length", "3", "--n", "8", "--top", "2", "--dense", "--json", "--device", device_flag()});
  ASSERT_EQ(run.exit_code, 0) << run.out << run.err;
  const auto out = nlohmann::json::parse(run.out);
  EXPECT_EQ(out["data"].get<std::string>(), "sorting");
  EXPECT_TRUE(out["converged"].get<bool>());
  EXPECT_LE(out["dense"]["max_relative_difference"].get<double>(), 1e-6);
  // The transformer goes with the sorting task and only with it: usage errors.
  EXPECT_EQ(run_cli({"hessian", "--arch", "transformer", "--device", device_flag()}).exit_code, 2);
  const CliRun mlp = run_cli({"hessian", "--data", "sorting", "--device", device_flag()});
  EXPECT_EQ(mlp.exit_code, 2);
  EXPECT_NE(mlp.err.find("expected --arch transformer"), std::string::npos) << mlp.err;
}

TEST_P(HessianCli, SizesThatDoNotFitTogetherAreUsageErrors) {
  const CliRun patch = run_cli({"hessian", "--arch", "vit", "--width", "4", "--patch", "3", "--device", device_flag()});
  EXPECT_EQ(patch.exit_code, 2);
  EXPECT_NE(patch.err.find("--patch 3 must divide the image height and width (8×8)"), std::string::npos) << patch.err;
  for (const std::string arch : {"vit", "transformer"}) {
    const std::string data = arch == "vit" ? "random" : "sorting";
    const CliRun heads = run_cli({"gradcheck", "--arch", arch, "--data", data, "--width", "4", "--heads", "3",
                                  "--device", device_flag()});
    EXPECT_EQ(heads.exit_code, 2) << arch;
    EXPECT_NE(heads.err.find("--heads 3 must divide --width 4"), std::string::npos) << heads.err;
  }
}

CFLOW_TEST_ON_ALL_BACKENDS(HessianCli);

}  // namespace
}  // namespace cflow
