#include "cflow/runtime/error.h"

namespace cflow {

void throw_call_error(const char* call, const char* file, int line, const std::string& detail) {
  throw CallError(std::string(call) + " failed at " + file + ":" + std::to_string(line) + ": " + detail, detail);
}

std::string user_message(const Error& e) {
  const auto* call = dynamic_cast<const CallError*>(&e);
  return call ? call->detail() : std::string(e.what());
}

void check_lapack(int info, const char* call, const char* file, int line) {
  if (info != 0) throw_call_error(call, file, line, "LAPACK info = " + std::to_string(info));
}

}  // namespace cflow
