// The lock-step fingerprint (include/cflow/engine/weight_fingerprint.h).
#include "cflow/engine/weight_fingerprint.h"

#include <random>

#include "cflow/runtime/blas.h"

namespace cflow {
namespace {

constexpr std::uint64_t kProbeSeed = 0x6c6f636b73746570;  // "lockstep": fixed so that every rank agrees

// Standard-normal entries: no entry is zero, no probe is orthogonal to a given δ ≠ 0 but by chance.
// Drawn on the host once per run, like the initial weights (one upload, not per step).
template <class T>
std::vector<T> draw_probes(index_t count) {
  std::mt19937_64 rng(kProbeSeed);
  std::normal_distribution<double> normal;
  std::vector<T> probes(static_cast<std::size_t>(count));
  for (T& p : probes) p = T(normal(rng));
  return probes;
}

}  // namespace

template <class T>
WeightFingerprint<T>::WeightFingerprint(const Device& dev, index_t d)
    : probes_(dev, draw_probes<T>(d * kProbes)), values_(dev, kProbes) {
  CFLOW_REQUIRE(d > 0, "a fingerprint needs a non-empty vector");
}

template <class T>
std::vector<T> WeightFingerprint<T>::of(const T* w) {
  const index_t d = probes_.size() / kProbes;
  blas::gemv<T>(probes_.device(), blas::Op::T, d, kProbes, T(1), probes_.data(), d, w, T(0), values_.data());
  return values_.to_host();
}

template <class T>
std::uint64_t WeightFingerprint<T>::hash(const T* w) {
  // FNV-1a over the bytes of the kProbes scalars: equal bits give equal words on every rank.
  const std::vector<T> values = of(w);
  std::uint64_t hash = 0xcbf29ce484222325;
  const auto* bytes = reinterpret_cast<const unsigned char*>(values.data());
  for (std::size_t i = 0; i < values.size() * sizeof(T); ++i) hash = (hash ^ bytes[i]) * 0x100000001b3;
  return hash;
}

template class WeightFingerprint<float>;
template class WeightFingerprint<double>;

}  // namespace cflow
