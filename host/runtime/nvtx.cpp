#include "cflow/runtime/nvtx.h"

#include "cflow/runtime/device.h"

#if defined(CFLOW_WITH_CUDA)
#include <cuda_profiler_api.h>
#include <nvtx3/nvToolsExt.h>

#include "kernels/cuda_check.h"
#endif

namespace cflow {

bool profiler_capture([[maybe_unused]] const Device& dev, [[maybe_unused]] bool on) {
#if defined(CFLOW_WITH_CUDA)
  if (!dev.is_cuda()) return false;
  if (on) CFLOW_CHECK_CUDA(cudaProfilerStart());
  else CFLOW_CHECK_CUDA(cudaProfilerStop());
  return true;
#else
  return false;
#endif
}

#if defined(CFLOW_WITH_CUDA)
NvtxRange::NvtxRange(const char* name) { nvtxRangePushA(name); }
NvtxRange::~NvtxRange() { nvtxRangePop(); }
#else
NvtxRange::NvtxRange(const char*) {}
NvtxRange::~NvtxRange() {}
#endif

}  // namespace cflow
