#pragma once
// Launchers exist once per backend, in namespaces cflow::cpu and cflow::cuda, compiled from the same
// kernel file. A kernel header declares its launchers for every built backend with
// CFLOW_BACKEND_DECLARATIONS, and host code calls the one for a device with CFLOW_DISPATCH.
#if defined(CFLOW_WITH_CUDA)
#define CFLOW_BACKEND_DECLARATIONS(...) \
  namespace cpu {                       \
  __VA_ARGS__                           \
  }                                     \
  namespace cuda {                      \
  __VA_ARGS__                           \
  }
#define CFLOW_DISPATCH(dev, fn, ...) \
  ((dev).is_cuda() ? ::cflow::cuda::fn(__VA_ARGS__) : ::cflow::cpu::fn(__VA_ARGS__))
#else
#define CFLOW_BACKEND_DECLARATIONS(...) \
  namespace cpu {                       \
  __VA_ARGS__                           \
  }
#define CFLOW_DISPATCH(dev, fn, ...) (::cflow::cpu::fn(__VA_ARGS__))
#endif
