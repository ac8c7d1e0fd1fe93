// The derivative oracle (docs/design.md §3) and the Hessian's top eigenpairs (§5) on numpy arrays:
// a Network<T> on the chosen device, queried at host vectors that are uploaded per call. Arrays are
// read and written with the GIL held; the computation runs with it released, one query at a time per
// oracle (the network caches its primal pass, so it is not reentrant).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <mutex>
#include <optional>
#include <string>

#include "cflow/engine/network.h"
#include "cflow/engine/pairs.h"
#include "cflow/solvers/dense_hessian.h"
#include "python/src/bindings.h"

namespace py = pybind11;

namespace cflow::python {

namespace {

// Examples one per row (C order) are the engine's column-major [features × n]; directions one per
// column (Fortran order) are its column-major d × m blocks.
template <class T>
using RowMajor = py::array_t<T, py::array::c_style | py::array::forcecast>;
template <class T>
using ColumnMajor = py::array_t<T, py::array::f_style | py::array::forcecast>;

template <class T>
Network<T> make_network(const Device& dev, const ModelSpec& spec, const RowMajor<T>& X, const RowMajor<T>& Y,
                        const std::optional<RowMajor<T>>& counted, const NetworkOptions& options) {
  if (X.ndim() < 1 || X.shape(0) < 1) throw py::value_error("X must hold at least one example (one per row)");
  const py::ssize_t n = X.shape(0);
  if (X.size() != n * spec.input.size())
    throw py::value_error("X has " + std::to_string(X.size() / n) + " features per example; the model's input_shape has " +
                          std::to_string(spec.input.size()));
  const py::ssize_t outputs = spec.classes * spec.positions;
  if (Y.ndim() != 2 || Y.shape(0) != n || Y.shape(1) != outputs)
    throw py::value_error("targets must have shape (n, " + std::to_string(outputs) + ") with n = " +
                          std::to_string(n) + " (integer labels are converted by cflow.Oracle)");
  const std::span<const T> inputs(X.data(), std::size_t(X.size())), targets(Y.data(), std::size_t(Y.size()));
  if (!counted) return Network<T>(dev, spec, inputs, targets, options);
  if (counted->ndim() != 2 || counted->shape(0) != n || counted->shape(1) != spec.positions)
    throw py::value_error("counted must have shape (n, " + std::to_string(spec.positions) + ") with n = " +
                          std::to_string(n) + " (1 for a position that counts, 0 for a masked one)");
  return Network<T>(dev, spec, inputs, targets, std::span<const T>(counted->data(), std::size_t(counted->size())),
                    options);
}

template <class T>
class Oracle {
 public:
  Oracle(const ModelSpec& spec, const RowMajor<T>& X, const RowMajor<T>& Y, const std::optional<RowMajor<T>>& counted,
         const std::string& device, int threads, index_t chunk, index_t max_directions)
      : dev_(Device::open(device, threads)),
        net_(make_network<T>(dev_, spec, X, Y, counted, {.chunk = chunk, .max_directions = max_directions})),
        w_(dev_, net_.dim()) {}

  index_t dim() const { return net_.dim(); }
  index_t examples() const { return net_.examples(); }
  std::string device() const { return dev_.description(); }

  py::tuple value_grad(const RowMajor<T>& w) {
    py::array_t<T> grad{py::ssize_t(dim())};
    T* out = grad.mutable_data();
    T value{};
    run(w, [&] {
      Buffer<T> g(dev_, dim());
      value = net_.value_grad(w_.data(), g.data());
      g.download({out, std::size_t(dim())});
    });
    return py::make_tuple(double(value), grad);
  }

  ColumnMajor<T> hvp(const RowMajor<T>& w, const ColumnMajor<T>& U) {
    const index_t m = directions(U);
    return block(w, U, shape_like(U, dim()), [&](const T* V, T* HV) { net_.hvp(w_.data(), V, m, HV); });
  }

  py::array_t<T> quad(const RowMajor<T>& w, const ColumnMajor<T>& U) {
    const index_t m = directions(U);
    std::vector<T> values;
    run(w, [&] {
      const Buffer<T> V(dev_, std::span<const T>(U.data(), std::size_t(U.size())));
      values = net_.quad(w_.data(), V.data(), m);
    });
    return to_numpy(values);
  }

  ColumnMajor<T> d3(const RowMajor<T>& w, const ColumnMajor<T>& U) {
    const index_t k = directions(U);
    return block(w, U, {py::ssize_t(dim()), py::ssize_t(pair_count(k))},
                 [&](const T* V, T* D) { net_.d3(w_.data(), V, k, D); });
  }

  // What `cflow hessian` computes (hessian_spectrum, P = I): eigenvalues descending, eigenvectors
  // (d × k), converged, iterations, relative residuals.
  py::tuple top_eigs(const RowMajor<T>& w, int k, double tolerance, int max_iterations, unsigned seed) {
    if (k < 1 || k > dim())
      throw py::value_error("k must be between 1 and the number of parameters (" + std::to_string(dim()) + ")");
    HessianSpectrumOptions options;
    options.lobpcg = {.k = k, .tolerance = tolerance, .max_iterations = max_iterations, .seed = seed};
    ColumnMajor<T> vectors({py::ssize_t(dim()), py::ssize_t(k)});
    T* out = vectors.mutable_data();
    LobpcgResult<T> s;
    run(w, [&] {
      s = std::move(hessian_spectrum<T>(net_, w_.data(), options).solution);
      s.U.download({out, std::size_t(dim() * k)});
    });
    return py::make_tuple(to_numpy(s.eigenvalues), vectors, s.converged, s.iterations, s.residuals);
  }

 private:
  index_t directions(const ColumnMajor<T>& U) const {
    if ((U.ndim() != 1 && U.ndim() != 2) || U.shape(0) != dim() || U.size() == 0)
      throw py::value_error("U must have shape (d,) or (d, m) with d = " + std::to_string(dim()) + " and m >= 1");
    return U.ndim() == 1 ? 1 : index_t(U.shape(1));
  }
  static std::vector<py::ssize_t> shape_like(const ColumnMajor<T>& U, index_t d) {
    if (U.ndim() == 1) return {py::ssize_t(d)};
    return {py::ssize_t(d), U.shape(1)};
  }

  // A query taking the block U and writing a d × columns block: uploads U, runs it, downloads the
  // result into a new array of `shape`.
  template <class Query>
  ColumnMajor<T> block(const RowMajor<T>& w, const ColumnMajor<T>& U, const std::vector<py::ssize_t>& shape,
                       Query&& query) {
    ColumnMajor<T> result(shape);
    T* out = result.mutable_data();
    run(w, [&] {
      const Buffer<T> V(dev_, std::span<const T>(U.data(), std::size_t(U.size())));
      Buffer<T> R(dev_, index_t(result.size()));
      query(V.data(), R.data());
      R.download({out, std::size_t(R.size())});
    });
    return result;
  }

  // Uploads w and runs `query` with the GIL released and this oracle locked.
  template <class Query>
  void run(const RowMajor<T>& w, Query&& query) {
    if (w.ndim() != 1 || w.shape(0) != dim())
      throw py::value_error("w must have shape (" + std::to_string(dim()) + ",)");
    py::gil_scoped_release release;
    std::lock_guard<std::mutex> lock(mutex_);
    w_.upload({w.data(), std::size_t(dim())});
    query();
    dev_.synchronize();
  }

  Device dev_;
  Network<T> net_;
  Buffer<T> w_;
  std::mutex mutex_;
};

template <class T>
void bind(py::module_& m, const char* name) {
  py::class_<Oracle<T>>(m, name)
      .def(py::init<const ModelSpec&, const RowMajor<T>&, const RowMajor<T>&, const std::optional<RowMajor<T>>&,
                    const std::string&, int, index_t, index_t>(),
           py::arg("spec"), py::arg("X"), py::arg("Y"), py::arg("counted"), py::arg("device"), py::arg("threads"),
           py::arg("chunk"), py::arg("max_directions"))
      .def_property_readonly("dim", &Oracle<T>::dim)
      .def_property_readonly("examples", &Oracle<T>::examples)
      .def_property_readonly("device", &Oracle<T>::device)
      .def("value_grad", &Oracle<T>::value_grad, py::arg("w"))
      .def("hvp", &Oracle<T>::hvp, py::arg("w"), py::arg("U"))
      .def("quad", &Oracle<T>::quad, py::arg("w"), py::arg("U"))
      .def("d3", &Oracle<T>::d3, py::arg("w"), py::arg("U"))
      .def("top_eigs", &Oracle<T>::top_eigs, py::arg("w"), py::arg("k"), py::arg("tolerance"),
           py::arg("max_iterations"), py::arg("seed"));
}

}  // namespace

void bind_oracle(py::module_& m) {
  bind<double>(m, "Oracle64");
  bind<float>(m, "Oracle32");
}

}  // namespace cflow::python
