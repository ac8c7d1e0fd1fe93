#pragma once
// An Objective that forwards every query to another and counts the directions it asks for, so that
// the cost of every process is measured the same way whatever answers the queries (docs/design.md §3):
// a gradient, an HVP column, a uᵀHu column and an order-2 jet (one per pair of d3, by polarization)
// are the oracle's units of work.
#include <cstdint>
#include <vector>

#include "cflow/engine/objective.h"
#include "cflow/engine/pairs.h"

namespace cflow {

struct OracleWork {
  std::int64_t gradients = 0;
  std::int64_t hvps = 0;   // columns of hvp blocks
  std::int64_t quads = 0;  // columns of quad blocks
  std::int64_t jets = 0;   // order-2 jets of d3: k(k+1)/2 for k vectors

  friend OracleWork operator-(const OracleWork& a, const OracleWork& b) {
    return {a.gradients - b.gradients, a.hvps - b.hvps, a.quads - b.quads, a.jets - b.jets};
  }
};

template <class T>
class CountingObjective final : public Objective<T> {
 public:
  explicit CountingObjective(Objective<T>& inner) : inner_(inner) {}

  index_t dim() const override { return inner_.dim(); }
  const Device& device() const override { return inner_.device(); }
  T value_grad(const T* w, T* grad) override {
    ++work_.gradients;
    return inner_.value_grad(w, grad);
  }
  void hvp(const T* w, const T* V, index_t m, T* HV) override {
    work_.hvps += m;
    inner_.hvp(w, V, m, HV);
  }
  std::vector<T> quad(const T* w, const T* U, index_t m) override {
    work_.quads += m;
    return inner_.quad(w, U, m);
  }
  // A part of the pairs costs k more jets (Network::d3_pairs: the diagonals it combines with), unless
  // the inner objective still holds them for this (w, U) (diagonal_jets_held); the quads come with
  // the jets and cost nothing more.
  void d3_pairs(const T* w, const T* U, index_t k, index_t first, index_t count, T* D, T* quads) override {
    const bool diagonals = count < pair_count(k) && !inner_.diagonal_jets_held(w, U, k);
    work_.jets += count + (diagonals ? k : 0);
    inner_.d3_pairs(w, U, k, first, count, D, quads);
  }
  bool diagonal_jets_held(const T* w, const T* U, index_t k) override { return inner_.diagonal_jets_held(w, U, k); }

  // Everything asked for since construction.
  const OracleWork& work() const { return work_; }

 private:
  Objective<T>& inner_;
  OracleWork work_;
};

}  // namespace cflow
