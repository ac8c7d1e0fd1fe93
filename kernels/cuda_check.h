#pragma once
// Checks for CUDA runtime calls: a failure becomes a cflow::Error naming the call, file and line.
#include <cuda_runtime.h>

#include "cflow/runtime/error.h"

#define CFLOW_CHECK_CUDA(call)                                                                   \
  do {                                                                                           \
    const cudaError_t cflow_status_ = (call);                                                    \
    if (cflow_status_ != cudaSuccess)                                                            \
      ::cflow::throw_call_error(#call, __FILE__, __LINE__, cudaGetErrorString(cflow_status_));   \
  } while (0)
