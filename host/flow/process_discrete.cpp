// The discrete process (docs/design.md §6): the optimizer itself, one step per unit of time.
#include <cmath>

#include "cflow/runtime/blas.h"
#include "host/flow/process.h"

namespace cflow {

template <class T>
ProcessRecord DiscreteProcess<T>::prepare_step(Context& c) {
  const double loss = this->gradient(c, this->w.data(), this->g.data());
  if (this->diverged(c, loss, this->g.data(), "")) return stopped_record(loss);
  OptimizerState<T>&now = this->state, &next = this->state_next;
  next = now;
  next.update(this->g.data());
  next.preconditioner(this->p.data());
  blas::copy<T>(c.dev, c.d, this->w.data(), this->w_next.data());
  next.step(this->w_next.data(), this->g.data());
  double logged_loss = loss;
  const T* at = reported_point(c, logged_loss);
  // The record shows the state the step uses (after its update with g).
  std::swap(now, next);
  ProcessRecord r = this->basic_record(c, at, logged_loss);
  std::swap(now, next);
  if (!c.settings.eig.track_discrete) return r;  // only the gradient: the eigenvalues stay NaN
  this->eigen(c, this->tracker, at, this->p.data(), this->full_solve(c));
  this->log_eigenvalues(c, r, at, this->full_solve(c));
  return r;
}

template class DiscreteProcess<float>;
template class DiscreteProcess<double>;

}  // namespace cflow
