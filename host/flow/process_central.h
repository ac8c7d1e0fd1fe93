#pragma once
// The central flow process (docs/design.md §6.4, §6.6), declared for the stationary flow
// (process_stationary.cpp), which differs only in how a substep finds Σ and the state.
#include <optional>
#include <vector>

#include "host/flow/process.h"

namespace cflow {

template <class T>
class CentralProcess : public Process<T> {
 public:
  using Context = ProcessContext<T>;
  CentralProcess(Context& c, std::span<const T> w0, const OptimizerState<T>& s,
                 ProcessKind as = ProcessKind::central)
      : Process<T>(c, as, w0, s) {}

  SigmaDirections<T> sigma_directions() const override { return {directions_.data(), direction_count_}; }

 protected:
  ProcessRecord prepare_step(Context& c) override;
  // One substep of (w_next, state_next) of length dt; grad = ∇L(w_next), precond receives P at the
  // substep's start and the tracker holds the critical eigenpairs the substep used. A failure stops
  // the process (nullopt).
  virtual std::optional<CentralSubstep> advance(Context& c, T* grad, T* precond, bool first, double dt);
  // The tracked effective eigenpairs above the SDCP threshold.
  CriticalSet<T> critical_set(const Context& c) const;
  // A full eigen-solve at this substep: at every substep with --central-eig-every-substep, else at
  // the first substep of every eig.frequency-th step (Rayleigh refreshes of the basis in between).
  // The stationary flow's rule too (process_stationary.cpp).
  bool full_solve_at(const Context& c, bool first) const;
  CentralSubstep refresh_from_d3(Context& c, T* grad, const T* precond, double dt);

 private:
  std::vector<double> sigma_eigenbasis(Context& c, const std::vector<double>& X, const T* U, index_t k);
  void predict(Context& c, ProcessRecord& r, const CentralSubstep& result, const CriticalSet<T>& critical,
               double loss);

  // The critical columns a refresh substep guessed, in the order its d3 pass ran along them.
  Buffer<T> guess_U_;
  // The P-normalized directions of Σ's eigenvectors (UQ, d × k) at time t.
  Buffer<T> directions_;
  index_t direction_count_ = 0;
};

}  // namespace cflow
