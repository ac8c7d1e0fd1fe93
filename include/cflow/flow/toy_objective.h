#pragma once
// The toy objective of docs/design.md §6 with K oscillating coordinates, an analytic stand-in for a network
// in tests of the eigen-solver, the optimizers and the flows:
//   L(x, y) = −a·y + ½ Σ_j (b_j + y) x_j²,   w = (x_1, …, x_K, y),   d = K + 1.
// Derivatives (j over the x coordinates):
//   ∇L = ((b_j + y) x_j,  −a + ½ Σ x_j²)
//   H:   H_{x_j x_j} = b_j + y,  H_{x_j y} = x_j,  H_{yy} = 0     (so along e_{x_j} at x = 0 the
//        curvature — the sharpness when it is the largest — is b_j + y, and ∇S = e_y)
//   ∇_w(uᵀHv) = (u_y v_j + v_y u_j,  Σ_j u_j v_j)                   (constant in w)
// Gradient flow raises y until b_j + y = 2/η for the smallest b_j; the central flow then holds it
// there with E[x_j²] = 2a.
#include <vector>

#include "cflow/engine/objective.h"

namespace cflow {

template <class T>
class ToyObjective final : public Objective<T> {
 public:
  // K = b.size() ≥ 1 oscillating coordinates with curvature offsets b_j.
  ToyObjective(const Device& dev, double a, std::vector<double> b);

  index_t dim() const override { return index_t(b_.size()) + 1; }
  const Device& device() const override { return dev_; }
  double a() const { return a_; }
  const std::vector<double>& b() const { return b_; }

  T value_grad(const T* w, T* grad) override;
  void hvp(const T* w, const T* V, index_t m, T* HV) override;
  std::vector<T> quad(const T* w, const T* U, index_t m) override;
  void d3_pairs(const T* w, const T* U, index_t k, index_t first, index_t count, T* D, T* quads) override;
  std::unique_ptr<Objective<T>> on_lane(const Device& lane) const override {
    return std::make_unique<ToyObjective>(lane, a_, b_);
  }

 private:
  Device dev_;
  double a_;
  std::vector<double> b_;
};

}  // namespace cflow
