#pragma once
// Anderson acceleration of a fixed point x = G(x) on device vectors (docs/design.md §6.9): type II
// (Walker & Ni 2011) with a bounded memory, a restart whenever the residual grows, and a floor that
// keeps every coordinate at least a fixed fraction of the plain step's (ν̂ must stay positive).
#include "cflow/runtime/buffer.h"

namespace cflow {

template <class T>
class AndersonMixing {
 public:
  // memory: how many past differences a step combines (0: the plain iteration x ← G(x)).
  AndersonMixing(const Device& dev, index_t d, int memory);

  // From G(x_k) (image) and a residual r_k of x_k whose zero is the fixed point (any fixed
  // weighting of G(x_k) − x_k; the least squares are taken in its norm), writes
  //     x_{k+1} = G(x_k) − ΔG γ,  γ = argmin ‖r_k − ΔR γ‖₂,
  // with ΔG, ΔR the last `memory` differences of successive images and residuals, floored
  // coordinate-wise at kFloor·G(x_k). A residual larger than the last one restarts the memory, and
  // that step is x_{k+1} = G(x_k). image, residual and next are device vectors of length d.
  void step(const T* image, const T* residual, T* next);
  // Forgets the history (the map changed: e.g. the critical set grew).
  void restart();
  // How many differences the last step combined.
  int columns() const { return columns_; }

  static constexpr double kFloor = 0.5;
  // Directions of the normalized Gram matrix ΔRᵀΔR with eigenvalues below this × the largest are
  // dropped from the least squares (singular values below ~1e-5 relative).
  static constexpr double kGramCutoff = 1e-10;

 private:
  std::vector<double> coefficients(const T* residual) const;

  Device dev_;
  index_t d_;
  int memory_;
  Buffer<T> image_differences_, residual_differences_;  // d × memory, the first count_ columns valid
  Buffer<T> last_image_, last_residual_;
  double last_norm_ = 0;
  bool has_last_ = false;
  int count_ = 0, slot_ = 0, columns_ = 0;
};

}  // namespace cflow
