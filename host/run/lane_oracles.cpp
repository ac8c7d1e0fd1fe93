#include "host/run/lane_oracles.h"

#include "cflow/runtime/buffer.h"

namespace cflow::run {

template <class T>
typename Experiment<T>::Oracles RunNetworks<T>::on(const Device& lane) const {
  auto bound_train = std::make_shared<Network<T>>(train->bound_to(lane));
  typename Experiment<T>::Oracles oracles{bound_train, [bound_train](const T* w) { return bound_train->evaluate(w); },
                                          {}, {}};
  if (test) {
    auto bound_test = std::make_shared<Network<T>>(test->bound_to(lane));
    oracles.evaluate_test = [bound_test](const T* w) { return bound_test->evaluate(w); };
  }
  if (probe) oracles.outputs = outputs_of(std::make_shared<Network<T>>(probe->bound_to(lane)));
  return oracles;
}

std::vector<std::int64_t> outputs_shape(const ModelSpec& spec, std::int64_t examples) {
  if (spec.positions == 1) return {examples, spec.classes};
  return {examples, spec.positions, spec.classes};
}

template <class T>
typename Experiment<T>::Outputs outputs_of(std::shared_ptr<Network<T>> probe) {
  index_t size = 1;
  for (const std::int64_t extent : outputs_shape(probe->spec(), probe->examples())) size *= extent;
  auto out = std::make_shared<Buffer<T>>(probe->device(), size);
  return [probe, out](const T* w) {
    probe->outputs(w, out->data());
    const std::vector<T> logits = out->to_host();
    return std::vector<double>(logits.begin(), logits.end());
  };
}

template struct RunNetworks<float>;
template struct RunNetworks<double>;
template Experiment<float>::Outputs outputs_of(std::shared_ptr<Network<float>>);
template Experiment<double>::Outputs outputs_of(std::shared_ptr<Network<double>>);

}  // namespace cflow::run
