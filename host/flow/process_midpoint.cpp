// The midpoint process (docs/design.md §6): the discrete iterates seen at second-order midpoints,
// w* = (w_prev + 2w + w_next)/4, which average out a period-two oscillation.
#include "cflow/runtime/blas.h"
#include "host/flow/process.h"

namespace cflow {
namespace {

template <class T>
class MidpointProcess final : public DiscreteProcess<T> {
 public:
  using Context = ProcessContext<T>;
  MidpointProcess(Context& c, std::span<const T> w0, const OptimizerState<T>& s)
      : DiscreteProcess<T>(c, ProcessKind::midpoint, w0, s), w_prev_(c.dev, c.d), w_mid_(c.dev, c.d) {}

  const T* position() const override { return has_prev_ ? w_mid_.data() : this->w.data(); }

  void commit() override {
    if (this->stopped) return;
    std::swap(w_prev_, this->w);  // w_prev ← w_t, then w ← w_next
    has_prev_ = true;
    std::swap(this->w, this->w_next);
    std::swap(this->state, this->state_next);
  }

  bool has_previous() const override { return has_prev_; }
  void save_previous(std::vector<std::pair<std::string, std::vector<double>>>& arrays,
                     const std::string& name) const override {
    const auto v = w_prev_.to_host_pageable();
    arrays.emplace_back(name, std::vector<double>(v.begin(), v.end()));
  }
  void restore_previous(bool has_prev, const std::vector<double>& w_prev, const std::string& name) override {
    CFLOW_REQUIRE(index_t(w_prev.size()) == w_prev_.size(), "checkpoint array '" + name + "' has the wrong size");
    has_prev_ = has_prev;
    w_prev_.upload(std::vector<T>(w_prev.begin(), w_prev.end()));
  }

 protected:
  const T* reported_point(Context& c, double& loss) override {
    if (!has_prev_) return this->w.data();
    blas::copy<T>(c.dev, c.d, w_prev_.data(), w_mid_.data());
    blas::axpy<T>(c.dev, c.d, T(2), this->w.data(), w_mid_.data());
    blas::axpy<T>(c.dev, c.d, T(1), this->w_next.data(), w_mid_.data());
    blas::scal<T>(c.dev, c.d, T(0.25), w_mid_.data());
    loss = this->gradient(c, w_mid_.data(), this->g.data());
    return w_mid_.data();
  }

 private:
  Buffer<T> w_prev_, w_mid_;
  bool has_prev_ = false;
};

}  // namespace

template <class T>
std::unique_ptr<Process<T>> make_midpoint_process(ProcessContext<T>& c, std::span<const T> w0,
                                                  const OptimizerState<T>& s) {
  return std::make_unique<MidpointProcess<T>>(c, w0, s);
}

template std::unique_ptr<Process<float>> make_midpoint_process(ProcessContext<float>&, std::span<const float>,
                                                               const OptimizerState<float>&);
template std::unique_ptr<Process<double>> make_midpoint_process(ProcessContext<double>&, std::span<const double>,
                                                                const OptimizerState<double>&);

}  // namespace cflow
