// cflow._core: the C++ engine seen from Python (pybind11). The package python/cflow wraps it; users
// import `cflow`, not this module.
#include <pybind11/pybind11.h>

#include "cflow/runtime/error.h"
#include "python/src/bindings.h"

PYBIND11_MODULE(_core, m) {
  m.doc() = "cflow's derivative engine (internal; use the cflow package)";
  m.attr("__version__") = CFLOW_VERSION;
  // Every cflow::Error (bad model settings, device failures, non-finite values) becomes cflow.Error.
  pybind11::register_exception<cflow::Error>(m, "Error", PyExc_RuntimeError);
  cflow::python::bind_model(m);
  cflow::python::bind_oracle(m);
}
