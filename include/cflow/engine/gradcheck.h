#pragma once
// Float64 verification of an objective's derivative oracle: every order against central finite
// differences of the order below it, plus the exact symmetries of H and D³L (docs/design.md §3).
// Each error is ‖oracle − reference‖ / max(‖reference‖, scale of the order below), so a quantity
// that is exactly zero (D³L of a ReLU net) is measured against a meaningful scale, not 0/0.
#include <cstdint>
#include <string>
#include <vector>

#include "cflow/engine/model.h"
#include "cflow/engine/objective.h"

namespace cflow {

struct GradcheckTolerances {
  double finite_difference = 1e-6;  // ∇L, Hv, uᵀHu, ∇(uᵀHu), ∇(uᵀHv) against central differences
  double symmetry = 1e-10;          // |uᵀHv − vᵀHu|, |⟨∇(uᵀHv), z⟩ − ⟨∇(uᵀHz), v⟩|
};

struct GradcheckEntry {
  std::string name;  // e.g. "Hv"
  std::string reference;
  double error;
  bool is_symmetry;
};

struct GradcheckResult {
  std::vector<GradcheckEntry> entries;
  double step;
  bool passed(const GradcheckTolerances& tolerances) const;
};

// Random standard-normal inputs shaped for `spec` and random labels turned into the targets of
// spec.loss: a problem for checks and benchmarks that needs no data files.
// Sequence models (spec.positions > 1) get random labels per position, some masked, and the
// transformer random token ids as inputs.
struct RandomData {
  std::vector<double> inputs;   // [features × n]
  std::vector<double> targets;  // [classes × positions × n]
  std::vector<double> counted;  // [positions × n]: 1, or 0 for a masked position
};
RandomData random_data(const ModelSpec& spec, index_t n, std::uint64_t seed);

// Random unit directions u, v, z from `seed`; finite-difference step `step` along them.
GradcheckResult gradcheck(Objective<double>& objective, const double* w, std::uint64_t seed, double step = 1e-5);

}  // namespace cflow
