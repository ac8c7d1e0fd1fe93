#pragma once
// NVTX ranges so an Nsight Systems timeline reads like the algorithm; no-ops without CUDA.
namespace cflow {

class Device;

// cudaProfilerStart (on) / cudaProfilerStop (off), which bound what
// `nsys profile --capture-range=cudaProfilerApi` records (`cflow run --profile-steps`). Returns false
// and does nothing on the CPU backend.
bool profiler_capture(const Device& dev, bool on);

class NvtxRange {
 public:
  explicit NvtxRange(const char* name);
  ~NvtxRange();
  NvtxRange(const NvtxRange&) = delete;
  NvtxRange& operator=(const NvtxRange&) = delete;
};

}  // namespace cflow

#define CFLOW_NVTX_CONCAT_(a, b) a##b
#define CFLOW_NVTX_CONCAT(a, b) CFLOW_NVTX_CONCAT_(a, b)
#define CFLOW_NVTX_RANGE(name) ::cflow::NvtxRange CFLOW_NVTX_CONCAT(cflow_nvtx_, __LINE__)(name)
