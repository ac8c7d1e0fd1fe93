// The model description (the model flags of the command line, host/cli/model_flags.h) and what needs only it: the parameter count, the initialization of
// Network::initial_parameters (docs/design.md §2), and training targets from integer labels (the
// encoding of make_targets, which `cflow run` uses).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <array>
#include <string>
#include <vector>

#include "cflow/data/dataset.h"
#include "cflow/engine/network.h"
#include "host/cli/model_flags.h"
#include "host/cli/sorting_flags.h"
#include "python/src/bindings.h"

namespace py = pybind11;

namespace cflow::python {

namespace {

// The settings of `cflow run`'s model flags (host/cli/model_flags.h); for the transformer, the
// sorting task's (host/cli/sorting_flags.h) set its classes (the vocabulary) and input (the tokens),
// as `--data sorting` does, and classes and input_shape are not used.
struct ModelArguments {
  cli::ModelOptions options;
  std::array<index_t, 3> input_shape;
  cli::SortingFlags sorting;
};

ModelSpec make_spec(const ModelArguments& a) {
  const cli::ModelOptions& o = a.options;
  if (o.width < 1) throw py::value_error("width must be positive, got " + std::to_string(o.width));
  if (o.depth < 0) throw py::value_error("depth must be non-negative, got " + std::to_string(o.depth));
  if (o.heads < 1 || o.patch < 1) throw py::value_error("heads and patch must be positive");
  if (o.arch == "transformer") {
    if (a.sorting.vocab_size < 2 || a.sorting.length < 1)
      throw py::value_error("the sorting task needs vocab_size >= 2 and length >= 1");
    return cli::sorting_spec(o, a.sorting, 0);  // the shapes do not depend on the seed
  }
  for (index_t extent : a.input_shape)
    if (extent < 1) throw py::value_error("input_shape entries must be positive");
  return o.spec({a.input_shape[0], a.input_shape[1], a.input_shape[2]});
}

// A network on one all-zero example: what the initialization and the parameter count need.
template <class T>
Network<T> shapes_only(const ModelSpec& spec) {
  const std::vector<T> input(std::size_t(spec.input.size()), T(0)),
      target(std::size_t(spec.classes * spec.positions), T(0));
  return Network<T>(Device::open("cpu"), spec, input, target);
}

template <class T>
py::array_t<T> initial_parameters(const ModelSpec& spec, std::uint64_t seed) {
  return to_numpy(shapes_only<T>(spec).initial_parameters(seed));
}

// labels (n,) in 0..N-1 → targets (n, outputs), as `cflow run` encodes them for the model's loss.
py::array_t<double> targets_from_labels(const ModelSpec& spec, py::array_t<long long, py::array::forcecast> labels) {
  if (labels.ndim() != 1) throw py::value_error("labels must be a 1-D integer array (one class per example)");
  Dataset data;
  data.n = std::size_t(labels.shape(0));
  data.classes = spec.classes == 1 ? ClassChoice{2, true} : ClassChoice{int(spec.classes), false};
  for (std::size_t i = 0; i < data.n; ++i) {
    const long long label = labels.at(py::ssize_t(i));
    if (label < 0 || label >= data.classes.count)
      throw py::value_error("label " + std::to_string(label) + " of example " + std::to_string(i) +
                            " is outside 0.." + std::to_string(data.classes.count - 1));
    data.labels.push_back(int(label));
  }
  return to_numpy(make_targets(data, spec.loss)).reshape({py::ssize_t(data.n), py::ssize_t(spec.classes)});
}

// n sequences of the sorting task as `cflow run --data sorting --seed seed` draws its training set:
// inputs (n, tokens), targets (n, tokens · vocabulary) and the counted positions (n, tokens).
py::tuple sorting_data(const ModelSpec& spec, int vocab_size, int length, index_t n, std::uint64_t seed) {
  if (spec.arch != Architecture::transformer) throw py::value_error("the sorting task is the transformer's data");
  if (n < 1) throw py::value_error("n must be positive, got " + std::to_string(n));
  const RandomData data = cli::sorting_data(spec, {vocab_size, length}, n, seed);
  const auto rows = [n](const std::vector<double>& values) {
    return to_numpy(values).reshape({py::ssize_t(n), py::ssize_t(values.size()) / py::ssize_t(n)});
  };
  return py::make_tuple(rows(data.inputs), rows(data.targets), rows(data.counted));
}

}  // namespace

void bind_model(py::module_& m) {
  py::class_<ModelSpec>(m, "ModelSpec")
      .def(py::init([](const std::string& arch, index_t width, int depth, const std::string& activation,
                       const std::string& loss, const std::string& classes, const std::array<index_t, 3>& input_shape,
                       bool bias, index_t heads, index_t patch, double output_scale, int vocab_size, int length) {
             return make_spec({{.arch = arch, .width = width, .depth = depth, .activation = activation, .loss = loss,
                                .classes = classes, .no_bias = !bias, .heads = heads, .patch = patch,
                                .output_scale = output_scale},
                               input_shape,
                               {vocab_size, length}});
           }),
           py::arg("arch"), py::arg("width"), py::arg("depth"), py::arg("activation"), py::arg("loss"),
           py::arg("classes"), py::arg("input_shape"), py::arg("bias"), py::arg("heads"), py::arg("patch"),
           py::arg("output_scale"), py::arg("vocab_size"), py::arg("length"))
      .def_property_readonly("arch", [](const ModelSpec& s) { return to_string(s.arch); })
      .def_readonly("width", &ModelSpec::width)
      .def_readonly("depth", &ModelSpec::depth)
      .def_property_readonly("activation", [](const ModelSpec& s) { return to_string(s.activation); })
      .def_property_readonly("loss", [](const ModelSpec& s) { return to_string(s.loss); })
      .def_readonly("outputs", &ModelSpec::classes)
      .def_readonly("bias", &ModelSpec::bias)
      .def_readonly("heads", &ModelSpec::heads)
      .def_readonly("patch", &ModelSpec::patch)
      .def_readonly("output_scale", &ModelSpec::output_scale)
      .def_readonly("positions", &ModelSpec::positions)
      .def_property_readonly("input_shape", [](const ModelSpec& s) {
        return py::make_tuple(s.input.channels, s.input.height, s.input.width);
      });
  m.def("parameter_count", [](const ModelSpec& spec) { return shapes_only<double>(spec).dim(); });
  m.def("initial_parameters_float64", &initial_parameters<double>, py::arg("spec"), py::arg("seed"));
  m.def("initial_parameters_float32", &initial_parameters<float>, py::arg("spec"), py::arg("seed"));
  m.def("sorting_data", &sorting_data, py::arg("spec"), py::arg("vocab_size"), py::arg("length"), py::arg("n"),
        py::arg("seed"));
  m.attr("sorting_defaults") = py::make_tuple(DataSpec{}.vocab_size, DataSpec{}.length);
  m.def("targets_from_labels", &targets_from_labels, py::arg("spec"), py::arg("labels"));
}

}  // namespace cflow::python
