#pragma once
// The network derivative engine: an MLP or CNN with its loss on a dataset held on the device,
// answering the oracle queries of docs/design.md §3 with hand-written jets. The primal pass at w is computed
// once and reused by every query at the same w: the same pointer with the same write version
// (Device::watch, docs/design.md §7), a host comparison that costs the device nothing.
#include <memory>
#include <span>

#include "cflow/engine/model.h"
#include "cflow/engine/objective.h"

namespace cflow {

struct NetworkOptions {
  index_t chunk = 0;            // examples per pass (0: all); bounds memory, results agree to rounding
  index_t max_directions = 16;  // directions per pass for hvp/quad/d3; bounds memory likewise
  // Tests: on every cache hit also compare w with a copy of the cached point on the device, and throw
  // if they differ (a write to w that did not report itself to Device::note_write).
  bool verify_cache = false;
};

template <class T>
class Network final : public Objective<T> {
 public:
  // inputs: [features × n] column-major (an example per column, NCHW); targets: [C × positions × n].
  Network(const Device& dev, const ModelSpec& spec, std::span<const T> inputs, std::span<const T> targets,
          NetworkOptions options = {});
  // With a mask: counted [positions × n] holds 1 for a position that counts and 0 for one that does
  // not; the loss and the accuracy are means over the counted positions (docs/design.md §3.11).
  Network(const Device& dev, const ModelSpec& spec, std::span<const T> inputs, std::span<const T> targets,
          std::span<const T> counted, NetworkOptions options = {});
  ~Network() override;
  Network(Network&&) noexcept;

  index_t dim() const override;
  const Device& device() const override;
  index_t examples() const;
  const ModelSpec& spec() const;

  // PyTorch-default initialization from a seed, drawn on the host in float64 and rounded to T, so
  // every backend and both precisions start from the same point.
  std::vector<T> initial_parameters(std::uint64_t seed) const;

  // This network on `lane`: its own primal cache and workspaces, the same layers and the same data
  // buffers (uploaded once, complete before the call returns). Results are the bits this one gives.
  Network bound_to(const Device& lane) const;
  std::unique_ptr<Objective<T>> on_lane(const Device& lane) const override;

  T value_grad(const T* w, T* grad) override;
  void hvp(const T* w, const T* V, index_t m, T* HV) override;
  std::vector<T> quad(const T* w, const T* U, index_t m) override;
  void d3_pairs(const T* w, const T* U, index_t k, index_t first, index_t count, T* D, T* quads) override;
  bool diagonal_jets_held(const T* w, const T* U, index_t k) override;

  Evaluation evaluate(const T* w);
  // Network outputs f(w; x_i) into out ([C × positions × n], device).
  void outputs(const T* w, T* out);

 private:
  struct State;
  explicit Network(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

}  // namespace cflow
