#include "cflow/runtime/error.h"

namespace cflow {

void throw_call_error(const char* call, const char* file, int line, const std::string& detail) {
  throw Error(std::string(call) + " failed at " + file + ":" + std::to_string(line) + ": " + detail);
}

}  // namespace cflow
