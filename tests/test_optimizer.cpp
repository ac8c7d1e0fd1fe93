// Optimizers (docs/design.md §4) in float64: every discrete update, step and preconditioner against numbers
// worked out by hand; the continuous-time rate coefficients of P against finite differences in time
// along the continuous dynamics and against the chain rule written out independently; advance
// against its formula; deep copies; the logged summaries.
#include <cmath>
#include <string>
#include <vector>

#include "cflow/flow/optimizer.h"
#include "test_support.h"

namespace cflow {
namespace {

using testing::BackendTest;
using testing::random_vector;
using Vec = std::vector<double>;

Buffer<double> on_device(const Device& dev, const Vec& v) { return Buffer<double>(dev, std::span<const double>(v)); }

OptimizerSpec spec_of(OptimizerKind kind, double lr, double beta2, double eps, bool bias_correction) {
  OptimizerSpec spec;
  spec.kind = kind;
  spec.lr = lr;
  spec.beta2 = beta2;
  spec.eps = eps;
  spec.bias_correction = bias_correction;
  return spec;
}

void expect_near_all(const Vec& got, const Vec& want, double rel, const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (std::size_t i = 0; i < got.size(); ++i)
    EXPECT_NEAR(got[i], want[i], rel * (1 + std::abs(want[i]))) << what << " [" << i << "]";
}

double value_of(const StateSummary& s, const std::string& name) {
  for (const auto& [key, value] : s.values)
    if (key == name) return value;
  ADD_FAILURE() << "summary has no " << name;
  return NAN;
}

std::vector<std::string> names_of(const StateSummary& s) {
  std::vector<std::string> names;
  for (const auto& entry : s.values) names.push_back(entry.first);
  return names;
}

// The preconditioner as a host vector.
Vec preconditioner_of(const OptimizerState<double>& opt) {
  Buffer<double> p(opt.device(), opt.dim());
  opt.preconditioner(p.data());
  return p.to_host();
}

// w − P⁻¹g as the optimizer computes it, from w.
Vec stepped(const OptimizerState<double>& opt, const Vec& w, const Vec& g) {
  auto dw = on_device(opt.device(), w), dg = on_device(opt.device(), g);
  opt.step(dw.data(), dg.data());
  return dw.to_host();
}

void update(OptimizerState<double>& opt, const Vec& g) {
  auto dg = on_device(opt.device(), g);
  opt.update(dg.data());
}

TEST(OptimizerNames, ParseAndPrint) {
  for (auto kind : {OptimizerKind::gd, OptimizerKind::scalar_rmsprop, OptimizerKind::rmsprop})
    EXPECT_EQ(parse_optimizer(to_string(kind)), kind);
  EXPECT_EQ(to_string(OptimizerKind::scalar_rmsprop), "scalar-rmsprop");
  EXPECT_THROW(parse_optimizer("adam"), Error);
}

TEST(OptimizerNames, SelectedIndices) {
  // d = 4: ⌊3j/24⌋ = ⌊j/8⌋.
  const auto four = selected_indices(4);
  ASSERT_EQ(four.size(), 25u);
  for (index_t j = 0; j < 25; ++j) EXPECT_EQ(four[std::size_t(j)], j < 8 ? 0 : j < 16 ? 1 : j < 24 ? 2 : 3);
  // d = 100: step 99/24 = 4.125.
  const auto hundred = selected_indices(100);
  EXPECT_EQ(hundred[0], 0);
  EXPECT_EQ(hundred[1], 4);
  EXPECT_EQ(hundred[8], 33);
  EXPECT_EQ(hundred[12], 49);
  EXPECT_EQ(hundred[24], 99);
  for (index_t i : selected_indices(1)) EXPECT_EQ(i, 0);
}

class Optimizer : public BackendTest {};

TEST_P(Optimizer, RejectsBadSpecs) {
  EXPECT_THROW(OptimizerState<double>(device(), spec_of(OptimizerKind::gd, 0.0, 0.9, 0, false), 3), Error);
  EXPECT_THROW(OptimizerState<double>(device(), spec_of(OptimizerKind::rmsprop, 0.1, 1.0, 0, false), 3), Error);
  EXPECT_THROW(OptimizerState<double>(device(), spec_of(OptimizerKind::rmsprop, 0.1, 0.9, -1, false), 3), Error);
  EXPECT_THROW(OptimizerState<double>(device(), spec_of(OptimizerKind::scalar_rmsprop, 0.1, 0.9, 0, false), 0), Error);
  // With bias correction P is undefined until the first update (1 − β₂⁰ = 0).
  OptimizerState<double> fresh(device(), spec_of(OptimizerKind::rmsprop, 0.1, 0.9, 0.1, true), 3);
  Buffer<double> p(device(), 3);
  EXPECT_THROW(fresh.preconditioner(p.data()), Error);
}

TEST_P(Optimizer, GradientDescent) {
  OptimizerState<double> opt(device(), spec_of(OptimizerKind::gd, 0.1, 0.99, 0.5, true), 3);
  EXPECT_EQ(opt.nu().size(), 0);
  update(opt, {1, -2, 0.5});
  EXPECT_EQ(opt.t(), 1.0);
  expect_near_all(preconditioner_of(opt), {10, 10, 10}, 1e-15, "P = I/η");
  expect_near_all(stepped(opt, {0.3, 0.4, -1}, {1, -2, 0.5}), {0.2, 0.6, -1.05}, 1e-15, "w − ηg");
  const auto s = opt.summary();
  EXPECT_EQ(names_of(s), (std::vector<std::string>{"opt.t", "opt.lr"}));
  EXPECT_EQ(value_of(s, "opt.t"), 1.0);
  EXPECT_EQ(value_of(s, "opt.lr"), 0.1);
  EXPECT_TRUE(s.vectors.empty());
}

// β₂ = 3/4, η = ε = 1/2, g = (2, −4, 6): ν = ¼ g² = (1, 4, 9), √ν = (1, 2, 3).
TEST_P(Optimizer, RmspropWithoutBiasCorrection) {
  OptimizerState<double> opt(device(), spec_of(OptimizerKind::rmsprop, 0.5, 0.75, 0.5, false), 3);
  ASSERT_EQ(opt.nu().size(), 3);
  const Vec g1{2, -4, 6}, w{1, 1, 1};
  update(opt, g1);
  EXPECT_EQ(opt.t(), 1.0);
  expect_near_all(opt.nu().to_host(), {1, 4, 9}, 1e-15, "ν after one update");
  // p = (√ν + ε)/η = (1.5, 2.5, 3.5)/0.5.
  expect_near_all(preconditioner_of(opt), {3, 5, 7}, 1e-15, "p");
  expect_near_all(stepped(opt, w, g1), {1 - 2.0 / 3, 1 + 4.0 / 5, 1 - 6.0 / 7}, 1e-15, "w − g/p");
  // Second update, g = (0, 4, 2): ν = ¾(1, 4, 9) + ¼(0, 16, 4) = (0.75, 7, 7.75).
  const Vec g2{0, 4, 2};
  update(opt, g2);
  EXPECT_EQ(opt.t(), 2.0);
  expect_near_all(opt.nu().to_host(), {0.75, 7, 7.75}, 1e-15, "ν after two updates");
  const Vec p{(std::sqrt(0.75) + 0.5) * 2, (std::sqrt(7.0) + 0.5) * 2, (std::sqrt(7.75) + 0.5) * 2};
  expect_near_all(preconditioner_of(opt), p, 1e-15, "p after two updates");
  expect_near_all(stepped(opt, w, g2), {1, 1 - 4 / p[1], 1 - 2 / p[2]}, 1e-15, "step after two updates");
  // The step divides by exactly the preconditioner that preconditioner() reports.
  const Vec got = stepped(opt, w, g2), pre = preconditioner_of(opt);
  for (std::size_t i = 0; i < 3; ++i) EXPECT_DOUBLE_EQ(got[i], w[i] - g2[i] / pre[i]);
}

TEST_P(Optimizer, RmspropWithBiasCorrection) {
  OptimizerState<double> opt(device(), spec_of(OptimizerKind::rmsprop, 0.5, 0.75, 0.5, true), 3);
  const Vec g1{2, -4, 6}, w{1, 1, 1};
  update(opt, g1);
  // t = 1: ν̂ = ν/(1 − ¾) = 4ν = g² = (4, 16, 36), √ν̂ = (2, 4, 6), p = (2.5, 4.5, 6.5)/0.5.
  expect_near_all(opt.nu().to_host(), {1, 4, 9}, 1e-15, "ν is stored uncorrected");
  expect_near_all(preconditioner_of(opt), {5, 9, 13}, 1e-15, "p at t = 1");
  expect_near_all(stepped(opt, w, g1), {1 - 2.0 / 5, 1 + 4.0 / 9, 1 - 6.0 / 13}, 1e-15, "step at t = 1");
  // The same gradient again: ν = (1 − β₂²) g², so ν̂ = g² at every t and p stays (5, 9, 13).
  update(opt, g1);
  expect_near_all(opt.nu().to_host(), {1.75, 7, 15.75}, 1e-15, "ν at t = 2");
  expect_near_all(preconditioner_of(opt), {5, 9, 13}, 1e-14, "p at t = 2, constant gradient");
  // A different gradient: ν = ¾(1.75, 7, 15.75) + ¼(0, 16, 4) = (1.3125, 9.25, 12.8125) at t = 3,
  // 1 − β₂³ = 37/64.
  update(opt, {0, 4, 2});
  EXPECT_EQ(opt.t(), 3.0);
  expect_near_all(opt.nu().to_host(), {1.3125, 9.25, 12.8125}, 1e-15, "ν at t = 3");
  const double c3 = 64.0 / 37;
  expect_near_all(preconditioner_of(opt),
                  {(std::sqrt(1.3125 * c3) + 0.5) * 2, (std::sqrt(9.25 * c3) + 0.5) * 2,
                   (std::sqrt(12.8125 * c3) + 0.5) * 2},
                  1e-15, "p at t = 3");
}

// d = 4, g = (1, 2, −2, 4), ‖g‖² = 25: ν = 6.25, √ν = 2.5.
TEST_P(Optimizer, ScalarRmsprop) {
  const Vec g1{1, 2, -2, 4}, g2{0, 0, 3, 4}, w{1, 2, 3, 4};  // ‖g2‖² = 25 as well
  for (bool bc : {false, true}) {
    SCOPED_TRACE(bc ? "bias correction" : "no bias correction");
    OptimizerState<double> opt(device(), spec_of(OptimizerKind::scalar_rmsprop, 0.5, 0.75, 0.5, bc), 4);
    ASSERT_EQ(opt.nu().size(), 1);
    update(opt, g1);
    expect_near_all(opt.nu().to_host(), {6.25}, 1e-15, "ν");
    // Without: p = (2.5 + 0.5)/0.5 = 6. With: ν̂ = 25, p = (5 + 0.5)/0.5 = 11.
    const double p1 = bc ? 11 : 6;
    expect_near_all(preconditioner_of(opt), Vec(4, p1), 1e-15, "p at t = 1");
    expect_near_all(stepped(opt, w, g1), {1 - 1 / p1, 2 - 2 / p1, 3 + 2 / p1, 4 - 4 / p1}, 1e-15, "step");
    EXPECT_NEAR(value_of(opt.summary(), "opt.effective_step_size"), 1 / p1, 1e-15);
    // ν = ¾·6.25 + ¼·25 = 10.9375; with bias correction ν̂ = 10.9375/(7/16) = 25 again.
    update(opt, g2);
    expect_near_all(opt.nu().to_host(), {10.9375}, 1e-15, "ν at t = 2");
    const double p2 = bc ? 11 : (std::sqrt(10.9375) + 0.5) * 2;
    expect_near_all(preconditioner_of(opt), Vec(4, p2), 1e-14, "p at t = 2");
    expect_near_all(stepped(opt, w, g2), {1, 2, 3 - 3 / p2, 4 - 4 / p2}, 1e-15, "step at t = 2");
    const auto s = opt.summary();
    EXPECT_EQ(names_of(s), (std::vector<std::string>{"opt.t", "opt.nu", "opt.lr", "opt.effective_step_size"}));
    EXPECT_EQ(value_of(s, "opt.t"), 2.0);
    EXPECT_NEAR(value_of(s, "opt.nu"), 10.9375, 1e-15);
    EXPECT_EQ(value_of(s, "opt.lr"), 0.5);
    EXPECT_NEAR(value_of(s, "opt.effective_step_size"), 1 / p2, 1e-15);
  }
}

// The chain rule written out on its own: p(ν, t) = (√(ν / (1 − β₂^t)) + ε)/η (bias correction) or
// (√ν + ε)/η, ν̇ = c(e − ν), ṫ = 1, so ṗ = ∂p/∂ν · c(e − ν) + ∂p/∂t = a e + b.
void chain_rule(double nu, double t, const OptimizerSpec& s, double* a, double* b) {
  const double c = (1 - s.beta2) / s.beta2;
  double dp_dnu, dp_dt = 0;
  if (s.bias_correction) {
    const double q = 1 - std::pow(s.beta2, t);
    dp_dnu = 1 / (2 * s.lr * std::sqrt(nu * q));
    // d/dt √(ν/q) = −½ √ν q^{−3/2} dq/dt, dq/dt = −β₂^t ln β₂.
    dp_dt = 0.5 * std::sqrt(nu) * std::pow(q, -1.5) * std::pow(s.beta2, t) * std::log(s.beta2) / s.lr;
  } else {
    dp_dnu = 1 / (2 * s.lr * std::sqrt(nu));
  }
  *a = c * dp_dnu;
  *b = -c * nu * dp_dnu + dp_dt;
}

TEST_P(Optimizer, RateCoefficientsMatchFiniteDifferencesAndTheChainRule) {
  const index_t d = 5;
  const Vec e = random_vector<double>(std::size_t(d), 21, 0.1, 3.0);  // E[g²] > 0
  for (auto kind : {OptimizerKind::scalar_rmsprop, OptimizerKind::rmsprop})
    for (bool bc : {false, true}) {
      SCOPED_TRACE(to_string(kind) + (bc ? " with bias correction" : " without bias correction"));
      const auto spec = spec_of(kind, 0.02, 0.9, 1e-3, bc);
      OptimizerState<double> opt(device(), spec, d);
      update(opt, random_vector<double>(std::size_t(d), 22));
      update(opt, random_vector<double>(std::size_t(d), 23));  // t = 2: the bias correction is strong
      const index_t n = kind == OptimizerKind::rmsprop ? d : 1;
      Buffer<double> da(device(), n), db(device(), n), de = on_device(device(), e);
      opt.preconditioner_rate_coefficients(da.data(), db.data());
      const Vec a = da.to_host(), b = db.to_host(), nu = opt.nu().to_host();
      double sum_e = 0;
      for (double x : e) sum_e += x;
      Vec predicted(static_cast<std::size_t>(d));
      for (index_t q = 0; q < d; ++q)
        predicted[std::size_t(q)] = n == d ? a[std::size_t(q)] * e[std::size_t(q)] + b[std::size_t(q)] : a[0] * sum_e + b[0];

      // Central differences in time of p along the dynamics (copies advanced by ±h), Richardson-
      // extrapolated from h and h/2 so the O(h²) truncation error (large where ν is small) drops out.
      auto central_difference = [&](double h) {
        OptimizerState<double> forward(opt), backward(opt);
        forward.advance(de.data(), h);
        backward.advance(de.data(), -h);
        const Vec pf = preconditioner_of(forward), pb = preconditioner_of(backward);
        Vec out(pf.size());
        for (std::size_t i = 0; i < out.size(); ++i) out[i] = (pf[i] - pb[i]) / (2 * h);
        return out;
      };
      const double h = 1e-4;
      const Vec coarse = central_difference(h), fine = central_difference(h / 2);
      for (index_t q = 0; q < d; ++q) {
        const std::size_t i = std::size_t(q);
        EXPECT_NEAR(predicted[i], (4 * fine[i] - coarse[i]) / 3, 1e-9 * std::abs(predicted[i])) << "coordinate " << q;
      }

      // The same numbers from the chain rule written independently.
      for (index_t r = 0; r < n; ++r) {
        double want_a, want_b;
        chain_rule(nu[std::size_t(r)], opt.t(), spec, &want_a, &want_b);
        EXPECT_NEAR(a[std::size_t(r)], want_a, 1e-12 * std::abs(want_a));
        EXPECT_NEAR(b[std::size_t(r)], want_b, 1e-12 * std::abs(want_b));
      }
    }
}

// Without bias correction ṗ does not depend on t; with it, the ∂p/∂t term is there and negative.
TEST_P(Optimizer, BiasCorrectionAddsANegativeTimeTerm) {
  const Vec g{0.5, -1, 2};
  for (auto kind : {OptimizerKind::scalar_rmsprop, OptimizerKind::rmsprop}) {
    OptimizerState<double> off(device(), spec_of(kind, 0.1, 0.9, 0.01, false), 3);
    OptimizerState<double> on(device(), spec_of(kind, 0.1, 0.9, 0.01, true), 3);
    update(off, g);
    update(on, g);
    const index_t n = kind == OptimizerKind::rmsprop ? 3 : 1;
    Buffer<double> a_off(device(), n), b_off(device(), n), a_on(device(), n), b_on(device(), n);
    off.preconditioner_rate_coefficients(a_off.data(), b_off.data());
    on.preconditioner_rate_coefficients(a_on.data(), b_on.data());
    // At e = ν the state does not move without bias correction: ṗ = aν + b = 0.
    const Vec nu = off.nu().to_host(), ao = a_off.to_host(), bo = b_off.to_host(), an = a_on.to_host(),
              bn = b_on.to_host();
    for (index_t r = 0; r < n; ++r) {
      const std::size_t i = std::size_t(r);
      EXPECT_NEAR(ao[i] * nu[i] + bo[i], 0, 1e-14 * std::abs(bo[i]));
      // With it, ṗ at e = ν is ∂p/∂t < 0: ν̂ decays as the correction wears off.
      EXPECT_LT(an[i] * nu[i] + bn[i], -1e-3 * std::abs(bn[i]));
    }
  }
}

TEST_P(Optimizer, GradientDescentHasAConstantPreconditioner) {
  OptimizerState<double> opt(device(), spec_of(OptimizerKind::gd, 0.25, 0.9, 0, false), 3);
  update(opt, {1, 2, 3});
  Buffer<double> a = on_device(device(), {7, 7, 7}), b = on_device(device(), {7, 7, 7}),
                 e = on_device(device(), {1, 1, 1});
  opt.preconditioner_rate_coefficients(a.data(), b.data());  // writes nothing
  EXPECT_EQ(a.to_host(), Vec(3, 7.0));
  EXPECT_EQ(b.to_host(), Vec(3, 7.0));
  opt.advance(e.data(), 0.25);
  EXPECT_EQ(opt.t(), 1.25);
  expect_near_all(preconditioner_of(opt), {4, 4, 4}, 1e-15, "P = I/η");
}

TEST_P(Optimizer, AdvanceMatchesItsFormula) {
  const index_t d = 4;
  const double beta2 = 0.8, c = 0.2 / 0.8, dt = 0.3;
  const Vec g{1, -2, 0.5, 3}, e{2, 0.25, 1, 7};
  auto de = on_device(device(), e);
  // rmsprop: ν = 0.2 g² = (0.2, 0.8, 0.05, 1.8); ν += dt·c (e − ν) elementwise.
  OptimizerState<double> rms(device(), spec_of(OptimizerKind::rmsprop, 0.1, beta2, 0, true), d);
  update(rms, g);
  rms.advance(de.data(), dt);
  EXPECT_DOUBLE_EQ(rms.t(), 1.3);
  const Vec nu0{0.2, 0.8, 0.05, 1.8};
  Vec want(static_cast<std::size_t>(d));
  for (std::size_t i = 0; i < want.size(); ++i) want[i] = nu0[i] + dt * c * (e[i] - nu0[i]);
  expect_near_all(rms.nu().to_host(), want, 1e-15, "rmsprop ν");
  // scalar: ν = 0.2 · 14.25 = 2.85; ν += dt·c (Σe − ν), Σe = 10.25.
  OptimizerState<double> scalar(device(), spec_of(OptimizerKind::scalar_rmsprop, 0.1, beta2, 0, false), d);
  update(scalar, g);
  expect_near_all(scalar.nu().to_host(), {2.85}, 1e-15, "scalar ν");
  scalar.advance(de.data(), dt);
  EXPECT_DOUBLE_EQ(scalar.t(), 1.3);
  expect_near_all(scalar.nu().to_host(), {2.85 + dt * c * (10.25 - 2.85)}, 1e-15, "scalar ν after advance");
  // The discrete update is the dt = β₂ step of the flow (c·β₂ = 1 − β₂), t aside.
  OptimizerState<double> discrete(device(), spec_of(OptimizerKind::rmsprop, 0.1, beta2, 0, false), d),
      flow(device(), spec_of(OptimizerKind::rmsprop, 0.1, beta2, 0, false), d);
  update(discrete, g);
  update(flow, g);
  Vec g2{0.5, 1, -1, 2}, g2sq(static_cast<std::size_t>(d));
  for (std::size_t i = 0; i < g2.size(); ++i) g2sq[i] = g2[i] * g2[i];
  update(discrete, g2);
  auto dg2sq = on_device(device(), g2sq);
  flow.advance(dg2sq.data(), beta2);
  expect_near_all(flow.nu().to_host(), discrete.nu().to_host(), 1e-15, "flow step dt = β₂ vs update");
}

TEST_P(Optimizer, CopiesAreDeep) {
  for (auto kind : {OptimizerKind::gd, OptimizerKind::scalar_rmsprop, OptimizerKind::rmsprop}) {
    SCOPED_TRACE(to_string(kind));
    OptimizerState<double> original(device(), spec_of(kind, 0.1, 0.9, 0.01, true), 3);
    update(original, {1, 2, 3});
    OptimizerState<double> copy(original);
    OptimizerState<double> assigned(device(), spec_of(OptimizerKind::gd, 1, 0.5, 0, false), 7);
    assigned = original;
    const Vec nu = original.nu().to_host(), p = preconditioner_of(original);
    update(original, {-4, 5, 6});
    auto e = on_device(device(), {1, 1, 1});
    original.advance(e.data(), 0.5);
    EXPECT_EQ(original.t(), 2.5);
    for (const OptimizerState<double>* branch : {&copy, &assigned}) {
      EXPECT_EQ(branch->t(), 1.0);
      EXPECT_EQ(branch->spec().kind, kind);
      EXPECT_EQ(branch->dim(), 3);
      EXPECT_EQ(branch->nu().to_host(), nu);
      EXPECT_EQ(preconditioner_of(*branch), p);
    }
    if (kind != OptimizerKind::gd) {
      EXPECT_NE(original.nu().to_host(), nu);
    }
    // Moving keeps the state.
    OptimizerState<double> moved(std::move(copy));
    EXPECT_EQ(moved.nu().to_host(), nu);
    EXPECT_EQ(moved.t(), 1.0);
  }
}

// ν = ¼ g² = (1, 4, 9, 16) with β₂ = 3/4, η = ε = 1/2: effective step sizes η/(√ν + ε) = (1/3, 1/5, 1/7, 1/9).
TEST_P(Optimizer, RmspropSummaries) {
  OptimizerState<double> opt(device(), spec_of(OptimizerKind::rmsprop, 0.5, 0.75, 0.5, false), 4);
  update(opt, {2, 4, -6, 8});
  const auto s = opt.summary();
  EXPECT_EQ(names_of(s), (std::vector<std::string>{"opt.t", "opt.nu_l1", "opt.ess_mean", "opt.ess_harmonic_mean",
                                                    "opt.lr"}));
  EXPECT_EQ(value_of(s, "opt.t"), 1.0);
  EXPECT_NEAR(value_of(s, "opt.nu_l1"), 30, 1e-14);
  EXPECT_NEAR(value_of(s, "opt.ess_mean"), (1.0 / 3 + 1.0 / 5 + 1.0 / 7 + 1.0 / 9) / 4, 1e-15);
  EXPECT_NEAR(value_of(s, "opt.ess_harmonic_mean"), 1.0 / 6, 1e-15);  // 1/mean(3, 5, 7, 9)
  EXPECT_EQ(value_of(s, "opt.lr"), 0.5);
  ASSERT_EQ(s.vectors.size(), 1u);
  EXPECT_EQ(s.vectors[0].first, "opt.nu_selected_idx");
  Vec want;
  for (int j = 0; j < 25; ++j) want.push_back(j < 8 ? 1 : j < 16 ? 4 : j < 24 ? 9 : 16);
  expect_near_all(s.vectors[0].second, want, 1e-15, "ν at the selected indices");

  // With bias correction the step sizes use ν̂ = ν/(1 − β₂^t) = g² at t = 1: η/(|g| + ε).
  OptimizerState<double> corrected(device(), spec_of(OptimizerKind::rmsprop, 0.5, 0.75, 0.5, true), 4);
  update(corrected, {2, 4, -6, 8});
  const auto sc = corrected.summary();
  EXPECT_NEAR(value_of(sc, "opt.nu_l1"), 30, 1e-14);  // ν itself, uncorrected
  EXPECT_NEAR(value_of(sc, "opt.ess_mean"), (0.5 / 2.5 + 0.5 / 4.5 + 0.5 / 6.5 + 0.5 / 8.5) / 4, 1e-15);
  EXPECT_NEAR(value_of(sc, "opt.ess_harmonic_mean"), 0.5 / 5.5, 1e-15);  // η / mean(2.5, 4.5, 6.5, 8.5)

  // A longer ν, set directly: ν_i = i, so the selected values are the indices ⌊99j/24⌋.
  OptimizerState<double> big(device(), spec_of(OptimizerKind::rmsprop, 0.5, 0.75, 0.5, false), 100);
  Vec ramp(100);
  for (std::size_t i = 0; i < ramp.size(); ++i) ramp[i] = double(i);
  big.nu().upload(ramp);
  const auto sb = big.summary();
  EXPECT_NEAR(value_of(sb, "opt.nu_l1"), 4950, 1e-10);
  const auto idx = selected_indices(100);
  for (std::size_t j = 0; j < 25; ++j) EXPECT_EQ(sb.vectors[0].second[j], double(idx[j]));
}

// float32 runs the same kernels: it agrees with float64 to float32 accuracy.
TEST_P(Optimizer, Float32AgreesWithFloat64) {
  const index_t d = 6;
  const Vec g = random_vector<double>(std::size_t(d), 31), w = random_vector<double>(std::size_t(d), 32);
  const std::vector<float> gf(g.begin(), g.end()), wf(w.begin(), w.end());
  for (auto kind : {OptimizerKind::gd, OptimizerKind::scalar_rmsprop, OptimizerKind::rmsprop}) {
    const auto spec = spec_of(kind, 0.05, 0.9, 1e-3, true);
    OptimizerState<double> o64(device(), spec, d);
    OptimizerState<float> o32(device(), spec, d);
    update(o64, g);
    Buffer<float> dg(device(), std::span<const float>(gf)), dw(device(), std::span<const float>(wf));
    o32.update(dg.data());
    o32.step(dw.data(), dg.data());
    const Vec want = stepped(o64, w, g);
    const auto got = dw.to_host();
    for (std::size_t i = 0; i < want.size(); ++i) EXPECT_NEAR(got[i], want[i], 1e-5 * (1 + std::abs(want[i])));
  }
}

CFLOW_TEST_ON_ALL_BACKENDS(Optimizer);

}  // namespace
}  // namespace cflow
