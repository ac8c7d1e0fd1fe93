#include "cflow/runtime/nvtx.h"

#if defined(CFLOW_WITH_CUDA)
#include <nvtx3/nvToolsExt.h>
#endif

namespace cflow {

#if defined(CFLOW_WITH_CUDA)
NvtxRange::NvtxRange(const char* name) { nvtxRangePushA(name); }
NvtxRange::~NvtxRange() { nvtxRangePop(); }
#else
NvtxRange::NvtxRange(const char*) {}
NvtxRange::~NvtxRange() {}
#endif

}  // namespace cflow
