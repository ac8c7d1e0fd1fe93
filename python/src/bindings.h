#pragma once
// The pieces of the cflow._core module (python/src/module.cpp puts them together).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <algorithm>
#include <vector>

namespace cflow::python {

void bind_model(pybind11::module_& m);   // ModelSpec, initial parameters, targets from labels
void bind_oracle(pybind11::module_& m);  // Oracle64 / Oracle32: the derivative oracle on numpy arrays

// A host vector as a new 1-D numpy array.
template <class T>
pybind11::array_t<T> to_numpy(const std::vector<T>& values) {
  pybind11::array_t<T> out{pybind11::ssize_t(values.size())};
  std::copy(values.begin(), values.end(), out.mutable_data());
  return out;
}

}  // namespace cflow::python
