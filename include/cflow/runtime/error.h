#pragma once
// cflow's one exception type: every failed CUDA/cuBLAS/cuSOLVER/LAPACK call, bad argument or bad
// input ends up here with a message that names what failed and where.
#include <stdexcept>
#include <string>

namespace cflow {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// "<call> failed at <file>:<line>: <detail>"
[[noreturn]] void throw_call_error(const char* call, const char* file, int line, const std::string& detail);
// Throws through throw_call_error when a LAPACK routine reports info ≠ 0.
void check_lapack(int info, const char* call, const char* file, int line);

}  // namespace cflow

#define CFLOW_REQUIRE(cond, message)                                                     \
  do {                                                                                   \
    if (!(cond)) ::cflow::throw_call_error(#cond, __FILE__, __LINE__, (message));        \
  } while (0)

#define CFLOW_CHECK_LAPACK(call) ::cflow::check_lapack((call), #call, __FILE__, __LINE__)
