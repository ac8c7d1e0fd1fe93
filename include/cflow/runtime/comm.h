#pragma once
// The processes of one data-parallel run (docs/design.md §7): their rank and count, and the few
// collectives the sharded oracle needs. Transports: MPI between processes (any backend; the CPU
// backend's only one), NCCL between GPUs (its unique id broadcast over MPI). A process that no MPI
// launcher (mpirun, srun) started is a world of one, and every collective is a no-op.
//
// Sums are deterministic: every rank receives every rank's contribution and adds them in rank order
// (0 + 1 + … + R−1) with the same kernels, so a run with the same R, backend and threads repeats bit
// for bit and all ranks hold the same bits. Every collective gives up after a timeout without
// an answer (a rank died or hangs) with a CommError that says so, rather than waiting forever: the
// environment variable CFLOW_COMM_TIMEOUT (seconds, default 300) sets the wait.
#include <cstdint>
#include <memory>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "cflow/runtime/buffer.h"

namespace cflow {

// A collective that failed or timed out, or ranks out of lock step: the whole run must stop on every
// rank. Deliberately not a cflow::Error, which the processes catch to stop only themselves
// (docs/design.md §6) — that would leave the ranks computing different things.
class CommError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class Communicator {
 public:
  // This process's world, initialized on first use (MPI when started by an MPI launcher and cflow was
  // built with CFLOW_MPI; otherwise a single process). Finalized at exit.
  static Communicator& world();

  int rank() const;
  int size() const;

  // data (count elements, device memory of dev) becomes the sum over ranks of data, on every rank.
  template <class T>
  void all_reduce_sum(const Device& dev, T* data, index_t count);
  // The same for host values.
  void all_reduce_sum(std::span<double> values);
  int all_reduce_max(int value);
  // Every rank's value, in rank order.
  std::vector<std::uint64_t> all_gather(std::uint64_t value);

  struct Impl;
  explicit Communicator(std::unique_ptr<Impl> impl);
  ~Communicator();
  Communicator(const Communicator&) = delete;
  Communicator& operator=(const Communicator&) = delete;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace cflow
