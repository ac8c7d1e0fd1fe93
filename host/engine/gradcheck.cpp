#include "cflow/engine/gradcheck.h"

#include <algorithm>
#include <cmath>
#include <random>

#include "cflow/runtime/blas.h"
#include "cflow/data/dataset.h"

namespace cflow {
namespace {

// Host-side vectors are enough here: this is a verification tool, not the hot loop.
using Vec = std::vector<double>;

double norm(const Vec& a) {
  double s = 0;
  for (double x : a) s += x * x;
  return std::sqrt(s);
}
double inner(const Vec& a, const Vec& b) {
  double s = 0;
  for (std::size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
  return s;
}
Vec difference_quotient(const Vec& plus, const Vec& minus, double h) {
  Vec out(plus.size());
  for (std::size_t i = 0; i < out.size(); ++i) out[i] = (plus[i] - minus[i]) / (2 * h);
  return out;
}
double relative_error(const Vec& got, const Vec& want, double scale) {
  Vec diff(got.size());
  for (std::size_t i = 0; i < got.size(); ++i) diff[i] = got[i] - want[i];
  return norm(diff) / std::max({norm(want), scale, 1e-300});
}

class Probe {
 public:
  Probe(Objective<double>& f, const double* w) : f_(f), d_(f.dim()), w_(f.device(), d_), work_(f.device(), d_) {
    blas::copy(f.device(), d_, w, w_.data());
    w_host_ = w_.to_host_pageable();
  }
  index_t dim() const { return d_; }
  // Point w + t·dir, as a device buffer in work_.
  const double* shifted(const Vec& dir, double t) {
    Vec p(w_host_);
    for (index_t i = 0; i < d_; ++i) p[std::size_t(i)] += t * dir[std::size_t(i)];
    work_.upload(p);
    return work_.data();
  }
  double loss_at(const Vec& dir, double t) {
    Buffer<double> grad(f_.device(), d_);
    return f_.value_grad(shifted(dir, t), grad.data());
  }
  Vec gradient_at(const Vec& dir, double t) {
    Buffer<double> grad(f_.device(), d_);
    f_.value_grad(shifted(dir, t), grad.data());
    return grad.to_host_pageable();
  }
  Vec hvp_at(const Vec& dir, double t, const Vec& v) {
    Buffer<double> V(f_.device(), std::span<const double>(v)), HV(f_.device(), d_);
    f_.hvp(shifted(dir, t), V.data(), 1, HV.data());
    return HV.to_host_pageable();
  }
  // d3 at w for the columns `U`, returned per pair.
  std::vector<Vec> d3(const std::vector<Vec>& U) {
    const index_t k = index_t(U.size());
    Vec packed;
    for (const Vec& u : U) packed.insert(packed.end(), u.begin(), u.end());
    Buffer<double> dU(f_.device(), std::span<const double>(packed)), D(f_.device(), d_ * pair_count(k));
    f_.d3(w_.data(), dU.data(), k, D.data());
    const Vec all = D.to_host_pageable();
    std::vector<Vec> pairs;
    for (index_t p = 0; p < pair_count(k); ++p)
      pairs.emplace_back(all.begin() + p * d_, all.begin() + (p + 1) * d_);
    return pairs;
  }
  double quad(const Vec& u) {
    Buffer<double> dU(f_.device(), std::span<const double>(u));
    return f_.quad(w_.data(), dU.data(), 1).at(0);
  }

 private:
  Objective<double>& f_;
  index_t d_;
  Buffer<double> w_, work_;
  Vec w_host_;
};

Vec random_unit(index_t d, std::mt19937_64& rng) {
  std::normal_distribution<double> normal;
  Vec v(static_cast<std::size_t>(d));
  for (double& x : v) x = normal(rng);
  const double s = norm(v);
  for (double& x : v) x /= s;
  return v;
}

}  // namespace

RandomData random_data(const ModelSpec& spec, index_t n, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> normal;
  Dataset data;
  data.n = std::size_t(n);
  data.channels = int(spec.input.channels);
  data.height = int(spec.input.height);
  data.width = int(spec.input.width);
  data.classes = spec.classes == 1 ? ClassChoice{2, true} : ClassChoice{int(spec.classes), false};
  data.positions = int(spec.positions);
  std::uniform_int_distribution<int> label(0, data.classes.count - 1), token(0, int(spec.classes) - 1);
  data.inputs.resize(data.features() * data.n);
  for (double& x : data.inputs) x = spec.arch == Architecture::transformer ? token(rng) : normal(rng);
  // Sequences: a position is masked with probability 1/(C + 1), but the last one always counts.
  std::uniform_int_distribution<int> maybe_masked(kMaskedLabel, data.classes.count - 1);
  for (std::size_t i = 0; i < data.n * std::size_t(data.positions); ++i) {
    const bool last = (i + 1) % std::size_t(data.positions) == 0;
    data.labels.push_back(last ? label(rng) : maybe_masked(rng));
  }
  std::vector<double> targets = make_targets(data, spec.loss);
  return {std::move(data.inputs), std::move(targets), counted_positions(data)};
}

bool GradcheckResult::passed(const GradcheckTolerances& tolerances) const {
  return std::all_of(entries.begin(), entries.end(), [&](const GradcheckEntry& e) {
    return e.error <= (e.is_symmetry ? tolerances.symmetry : tolerances.finite_difference);
  });
}

GradcheckResult gradcheck(Objective<double>& objective, const double* w, std::uint64_t seed, double h) {
  Probe probe(objective, w);
  std::mt19937_64 rng(seed);
  const index_t d = probe.dim();
  const Vec u = random_unit(d, rng), v = random_unit(d, rng), z = random_unit(d, rng), none(std::size_t(d), 0.0);

  const double loss = probe.loss_at(none, 0);
  const Vec g = probe.gradient_at(none, 0);
  const Vec Hu = probe.hvp_at(none, 0, u), Hv = probe.hvp_at(none, 0, v);
  GradcheckResult result{{}, h};
  auto add = [&](std::string name, std::string reference, double error, bool symmetry = false) {
    result.entries.push_back({std::move(name), std::move(reference), error, symmetry});
  };

  // ∇L·v against (L(w+hv) − L(w−hv)) / 2h, for three directions.
  double gradient_error = 0;
  for (const Vec* dir : {&u, &v, &z}) {
    const double fd = (probe.loss_at(*dir, h) - probe.loss_at(*dir, -h)) / (2 * h);
    gradient_error = std::max(gradient_error, std::abs(inner(g, *dir) - fd) / std::max({std::abs(fd), norm(g), std::abs(loss) * 1e-3, 1e-300}));
  }
  add("grad L", "central differences of L along u, v, z", gradient_error);

  const Vec fd_Hv = difference_quotient(probe.gradient_at(v, h), probe.gradient_at(v, -h), h);
  add("Hv", "central differences of grad L along v", relative_error(Hv, fd_Hv, norm(g)));

  const Vec fd_Hu = difference_quotient(probe.gradient_at(u, h), probe.gradient_at(u, -h), h);
  add("u'Hu (quad)", "u . central differences of grad L along u",
      std::abs(probe.quad(u) - inner(u, fd_Hu)) / std::max({norm(fd_Hu), norm(g), 1e-300}));

  const std::vector<Vec> pairs = probe.d3({u, v, z});  // (0,0) (0,1) (0,2) (1,1) (1,2) (2,2)
  const Vec fd_dHu = difference_quotient(probe.hvp_at(u, h, u), probe.hvp_at(u, -h, u), h);
  const Vec fd_dHv = difference_quotient(probe.hvp_at(u, h, v), probe.hvp_at(u, -h, v), h);
  add("grad(u'Hu)", "central differences of Hu along u", relative_error(pairs[0], fd_dHu, norm(Hu)));
  add("grad(u'Hv)", "central differences of Hv along u", relative_error(pairs[1], fd_dHv, norm(Hv)));

  add("|u'Hv - v'Hu|", "symmetry of H", std::abs(inner(u, Hv) - inner(v, Hu)) / std::max({norm(Hu), norm(Hv), 1e-300}),
      true);
  add("|<grad(u'Hv),z> - <grad(u'Hz),v>|", "symmetry of D3L",
      std::abs(inner(pairs[1], z) - inner(pairs[2], v)) / std::max({norm(pairs[1]), norm(pairs[2]), norm(Hv), 1e-300}),
      true);
  return result;
}

}  // namespace cflow
