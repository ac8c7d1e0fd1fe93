#pragma once
// cflow's one exception type: every failed CUDA/cuBLAS/cuSOLVER/LAPACK call, bad argument or bad
// input ends up here with a message that names what failed and where.
#include <stdexcept>
#include <string>
#include <utility>

namespace cflow {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A failed call or internal check: what() is "<call> failed at <file>:<line>: <detail>", for
// developers; detail() alone is the sentence a stop reason shows users.
class CallError : public Error {
 public:
  CallError(const std::string& what, std::string detail) : Error(what), detail_(std::move(detail)) {}
  const std::string& detail() const { return detail_; }

 private:
  std::string detail_;
};

// The message of `e` without file and line (a CallError's detail), for reasons users read.
std::string user_message(const Error& e);

// Throws CallError("<call> failed at <file>:<line>: <detail>", detail).
[[noreturn]] void throw_call_error(const char* call, const char* file, int line, const std::string& detail);
// Throws through throw_call_error when a LAPACK routine reports info ≠ 0.
void check_lapack(int info, const char* call, const char* file, int line);

}  // namespace cflow

#define CFLOW_REQUIRE(cond, message)                                                     \
  do {                                                                                   \
    if (!(cond)) ::cflow::throw_call_error(#cond, __FILE__, __LINE__, (message));        \
  } while (0)

#define CFLOW_CHECK_LAPACK(call) ::cflow::check_lapack((call), #call, __FILE__, __LINE__)
