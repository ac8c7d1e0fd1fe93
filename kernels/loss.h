#pragma once
// Loss jets (docs/design.md §3), one thread per (example, direction). Outputs f are [C × nb]; targets are
// [C × nb] (one-hot, ±1 for binary MSE, {0,1} for binary CE); tangents/adjoints [C × nb × m]. An
// "example" here is one loss term: a sequence model's nb = examples × positions (§3.11). counted [nb]
// (null: every term counts) holds 1, or 0 for a masked position, whose loss, adjoints and second
// order are exactly 0.
#include <cstdint>

#include "cflow/runtime/device.h"
#include "kernels/dispatch.h"

namespace cflow {

// The per-example loss ℓ(f, t): MSE ½Σ(f − t)², softmax cross-entropy (C ≥ 2), logistic (C = 1).
enum class LossFunction { mse, softmax_cross_entropy, logistic };

CFLOW_BACKEND_DECLARATIONS(
  // loss[i] = ℓ(f0_i, t_i); correct[i] = 1 when the prediction matches the target, else 0.
  template <class T>
  void loss_values(const Device& dev, LossFunction fn, std::int64_t classes, std::int64_t nb, const T* f0,
                   const T* targets, const T* counted, T* loss, T* correct);
  // Adjoints of s = scale · Σ_i ℓ_order(i) (ℓ0 = ℓ, ℓ1 = ∇ℓ·f1, ℓ2 = ∇ℓ·f2 + f1ᵀ∇²ℓ f1), per direction:
  //   order 0: fb0 = scale ∇ℓ                                     (m = 1)
  //   order 1: fb1 = scale ∇ℓ;  fb0 = scale ∇²ℓ f1
  //   order 2: fb2 = scale ∇ℓ;  fb1 = 2 scale ∇²ℓ f1;  fb0 = scale (∇²ℓ f2 + ∇³ℓ[f1, f1])
  template <class T>
  void loss_adjoint(const Device& dev, LossFunction fn, int order, std::int64_t classes, std::int64_t nb,
                    std::int64_t m, T scale, const T* f0, const T* f1, const T* f2, const T* targets,
                    const T* counted, T* fb0, T* fb1, T* fb2);
  // second[i + nb j] = ℓ2 of example i along direction j.
  template <class T>
  void loss_second_order(const Device& dev, LossFunction fn, std::int64_t classes, std::int64_t nb,
                         std::int64_t m, const T* f0, const T* f1, const T* f2, const T* targets,
                         const T* counted, T* second);
)
}  // namespace cflow
