// The network derivative oracle, end to end in float64: every order against central finite
// differences and exact symmetries, for every activation × loss × bias; batching, chunking and
// precision must not change the answers.
#include <algorithm>
#include <cmath>
#include <numeric>
#include <tuple>

#include "cflow/data/dataset.h"
#include "cflow/runtime/blas.h"
#include "cflow/engine/counting_objective.h"
#include "cflow/engine/gradcheck.h"
#include "cflow/engine/network.h"
#include "test_support.h"

namespace cflow {
namespace {

using testing::BackendTest;
using testing::random_vector;

ModelSpec small_spec(Architecture arch, Activation act, LossKind loss, index_t classes, bool bias) {
  ModelSpec spec;
  spec.arch = arch;
  spec.activation = act;
  spec.loss = loss;
  spec.classes = classes;
  spec.bias = bias;
  if (arch == Architecture::mlp) {
    spec.width = 6;
    spec.depth = 2;
    spec.input = {5, 1, 1};
  } else if (arch == Architecture::resnet) {
    spec.width = 2;
    spec.depth = 1;
    spec.input = {2, 8, 8};
  } else if (arch == Architecture::vit) {  // 4 patches of 4×4, 8 features, 2 heads
    spec.width = 8;
    spec.depth = 1;
    spec.input = {2, 8, 8};
  } else if (arch == Architecture::transformer) {  // 5 tokens of a vocabulary of `classes`, 8 features, 2 heads
    spec.width = 8;
    spec.depth = 1;
    spec.input = {5, 1, 1};
    spec.positions = 5;
    spec.output_scale = 1.0;  // the reference's 0 would leave the blocks' third-order jets unchecked
  } else {
    spec.width = 2;
    spec.input = {2, 4, 8};
  }
  return spec;
}

template <class T>
Network<T> make_network(const Device& dev, const ModelSpec& spec, index_t n, NetworkOptions options = {}) {
  const RandomData data = random_data(spec, n, 7);
  const std::vector<T> x(data.inputs.begin(), data.inputs.end()), y(data.targets.begin(), data.targets.end()),
      counted(data.counted.begin(), data.counted.end());
  return Network<T>(dev, spec, x, y, counted, options);
}

// Parameters: initial weights scaled up a little so the activations leave their linear regime. The
// ResNet's blocks start as the identity (zero GroupNorm scales): they are moved off it, or their
// branches would contribute nothing to check.
template <class T>
Buffer<T> point(Network<T>& net, std::uint64_t seed = 3) {
  auto w = net.initial_parameters(seed);
  for (auto& x : w) x *= T(1.5);
  if (net.spec().arch == Architecture::resnet) {
    const auto noise = random_vector<T>(w.size(), unsigned(seed) + 100, T(-0.1), T(0.1));
    for (std::size_t i = 0; i < w.size(); ++i) w[i] += noise[i];
  }
  return Buffer<T>(net.device(), std::span<const T>(w));
}

using Case = std::tuple<Backend, Architecture, Activation, LossKind, index_t /*classes*/, bool /*bias*/>;

class OracleGradcheck : public ::testing::TestWithParam<Case> {};

TEST_P(OracleGradcheck, EveryOrderMatchesFiniteDifferencesAndSymmetries) {
  const auto [backend, arch, act, loss, classes, bias] = GetParam();
  std::string why;
  if (backend == Backend::cuda && !cuda_available(&why)) GTEST_SKIP() << "CUDA backend not tested here: " << why;
  const Device dev = Device::open(backend == Backend::cuda ? "cuda" : "cpu");
  auto net = make_network<double>(dev, small_spec(arch, act, loss, classes, bias), 9);
  auto w = point(net);
  const GradcheckResult result = gradcheck(net, w.data(), 11);
  const GradcheckTolerances tolerances;
  for (const auto& e : result.entries)
    EXPECT_LE(e.error, e.is_symmetry ? tolerances.symmetry : tolerances.finite_difference) << e.name;
  EXPECT_TRUE(result.passed(tolerances));
}

std::string case_name(const ::testing::TestParamInfo<Case>& info) {
  const auto [backend, arch, act, loss, classes, bias] = info.param;
  return std::string(backend == Backend::cuda ? "cuda" : "cpu") + "_" + to_string(arch) + "_" + to_string(act) + "_" +
         to_string(loss) + (classes == 1 ? "_binary" : "_categorical") + (bias ? "_bias" : "_nobias");
}

INSTANTIATE_TEST_SUITE_P(
    Mlp, OracleGradcheck,
    ::testing::Combine(::testing::Values(Backend::cpu, Backend::cuda), ::testing::Values(Architecture::mlp),
                       ::testing::Values(Activation::gelu, Activation::tanh, Activation::silu, Activation::softplus,
                                         Activation::relu, Activation::identity),
                       ::testing::Values(LossKind::mse, LossKind::ce), ::testing::Values(index_t(1), index_t(3)),
                       ::testing::Bool()),
    case_name);

// The CNN's biases are fixed by its architecture, so only one bias setting.
INSTANTIATE_TEST_SUITE_P(
    Cnn, OracleGradcheck,
    ::testing::Combine(::testing::Values(Backend::cpu, Backend::cuda), ::testing::Values(Architecture::cnn),
                       ::testing::Values(Activation::gelu, Activation::tanh, Activation::silu, Activation::softplus,
                                         Activation::relu, Activation::identity),
                       ::testing::Values(LossKind::mse, LossKind::ce), ::testing::Values(index_t(1), index_t(3)),
                       ::testing::Values(false)),
    case_name);

// The ResNet's convolutions have no biases; its head's bias is fixed. Its forward pass costs more, so
// only the categorical head here (the output layer and the losses are the MLP's, checked above).
INSTANTIATE_TEST_SUITE_P(
    Resnet, OracleGradcheck,
    ::testing::Combine(::testing::Values(Backend::cpu, Backend::cuda), ::testing::Values(Architecture::resnet),
                       ::testing::Values(Activation::gelu, Activation::tanh, Activation::silu, Activation::softplus,
                                         Activation::relu, Activation::identity),
                       ::testing::Values(LossKind::mse, LossKind::ce), ::testing::Values(index_t(3)),
                       ::testing::Values(false)),
    case_name);

// The ViT (patches, attention, LayerNorm, token pooling): categorical head only, as the ResNet.
INSTANTIATE_TEST_SUITE_P(
    Vit, OracleGradcheck,
    ::testing::Combine(::testing::Values(Backend::cpu, Backend::cuda), ::testing::Values(Architecture::vit),
                       ::testing::Values(Activation::gelu, Activation::tanh, Activation::silu, Activation::softplus,
                                         Activation::relu, Activation::identity),
                       ::testing::Values(LossKind::mse, LossKind::ce), ::testing::Values(index_t(3)),
                       ::testing::Values(true)),
    case_name);

// The causal transformer on token sequences with masked positions: categorical head only (the vocabulary).
INSTANTIATE_TEST_SUITE_P(
    Transformer, OracleGradcheck,
    ::testing::Combine(::testing::Values(Backend::cpu, Backend::cuda), ::testing::Values(Architecture::transformer),
                       ::testing::Values(Activation::gelu, Activation::tanh, Activation::silu, Activation::softplus,
                                         Activation::relu, Activation::identity),
                       ::testing::Values(LossKind::mse, LossKind::ce), ::testing::Values(index_t(3)),
                       ::testing::Values(true)),
    case_name);

// Losses over sequence positions (docs/design.md §3.11) on an MLP whose head gives 3 classes at each of
// 4 positions, some masked: the mean over counted positions against a naive loop that skips them,
// every order against finite differences, and masked targets that change nothing.
class SequenceLoss : public ::testing::TestWithParam<LossKind> {};

double naive_masked_loss(LossKind loss, const std::vector<double>& f, const RandomData& data, index_t classes) {
  double sum = 0, count = 0;
  for (std::size_t term = 0; term < data.counted.size(); ++term) {
    if (data.counted[term] == 0) continue;
    const double* out = f.data() + term * std::size_t(classes);
    const double* target = data.targets.data() + term * std::size_t(classes);
    double top = out[0], exp_sum = 0, value = 0;
    for (index_t c = 0; c < classes; ++c) top = std::max(top, out[c]);
    for (index_t c = 0; c < classes; ++c) exp_sum += std::exp(out[c] - top);
    for (index_t c = 0; c < classes; ++c)
      value += loss == LossKind::mse ? 0.5 * (out[c] - target[c]) * (out[c] - target[c]) : -target[c] * out[c];
    sum += loss == LossKind::mse ? value : value + top + std::log(exp_sum);
    count += 1;
  }
  return sum / count;
}

// Two networks that differ only where nothing may count: bit for bit the same value, gradient,
// Hessian-vector product and uᵀHu at w.
void expect_same_oracle(Network<double>& a, Network<double>& b, const double* w) {
  const Device& dev = a.device();
  const index_t d = a.dim();
  const auto v = random_vector<double>(std::size_t(d), 9);
  Buffer<double> g1(dev, d), g2(dev, d), dv(dev, std::span<const double>(v)), h1(dev, d), h2(dev, d);
  EXPECT_EQ(a.value_grad(w, g1.data()), b.value_grad(w, g2.data()));
  EXPECT_EQ(g1.to_host(), g2.to_host());
  a.hvp(w, dv.data(), 1, h1.data());
  b.hvp(w, dv.data(), 1, h2.data());
  EXPECT_EQ(h1.to_host(), h2.to_host());
  EXPECT_EQ(a.quad(w, dv.data(), 1), b.quad(w, dv.data(), 1));
}

TEST_P(SequenceLoss, MeanOverCountedPositions) {
  const Device dev = Device::open("cpu");
  ModelSpec spec = small_spec(Architecture::mlp, Activation::tanh, GetParam(), 3, true);
  spec.positions = 4;
  const index_t n = 6;
  RandomData data = random_data(spec, n, 5);
  const double counted = std::accumulate(data.counted.begin(), data.counted.end(), 0.0);
  ASSERT_GT(counted, double(n)) << "every example's last position counts, and some others";
  ASSERT_LT(counted, double(n * spec.positions)) << "some positions are masked";
  Network<double> net(dev, spec, data.inputs, data.targets, data.counted);
  auto w = point(net);
  Buffer<double> f(dev, 3 * spec.positions * n);
  net.outputs(w.data(), f.data());
  EXPECT_NEAR(net.evaluate(w.data()).loss, naive_masked_loss(GetParam(), f.to_host(), data, 3), 1e-13);
  EXPECT_TRUE(gradcheck(net, w.data(), 11).passed({}));

  // Other targets at the masked positions: the same value, gradient and Hessian-vector product.
  RandomData other = data;
  for (std::size_t i = 0; i < other.targets.size(); ++i)
    if (other.counted[i / 3] == 0) other.targets[i] = 7.0 + double(i);
  Network<double> same(dev, spec, other.inputs, other.targets, other.counted);
  expect_same_oracle(net, same, w.data());
}

// The sorting task's own data through the transformer (vocabulary 3, length 3: 5 tokens, the first 2
// labels kMaskedLabel): the loss is the mean over the sorted half's positions (the naive loop above);
// any label hidden behind the mask changes nothing, bit for bit, while a counted label changes the loss.
TEST_P(SequenceLoss, SortingTaskCountsOnlyTheSortedHalf) {
  const Device dev = Device::open("cpu");
  const ModelSpec spec = small_spec(Architecture::transformer, Activation::gelu, GetParam(), 3, true);
  const Dataset sorting = make_sorting(4, 3, 3, 11, DataSplit::train);
  ASSERT_EQ(std::count(sorting.labels.begin(), sorting.labels.end(), kMaskedLabel), 4 * 2);
  const RandomData data{sorting.inputs, make_targets(sorting, GetParam()), counted_positions(sorting)};
  Network<double> net(dev, spec, data.inputs, data.targets, data.counted);
  auto w = point(net);
  Buffer<double> f(dev, 3 * spec.positions * 4);
  net.outputs(w.data(), f.data());
  const double loss = net.evaluate(w.data()).loss;
  EXPECT_NEAR(loss, naive_masked_loss(GetParam(), f.to_host(), data, 3), 1e-13);

  // Labels behind the mask (counted stays 0): the one-hot targets of class j mod 3 there.
  auto one_hot = [](std::vector<double>& targets, std::size_t position, int label) {
    for (std::size_t c = 0; c < 3; ++c) targets[position * 3 + c] = int(c) == label ? 1.0 : 0.0;
  };
  std::vector<double> hidden_targets = data.targets;
  for (std::size_t j = 0; j < sorting.labels.size(); ++j)
    if (sorting.labels[j] == kMaskedLabel) one_hot(hidden_targets, j, int(j % 3));
  ASSERT_NE(hidden_targets, data.targets);
  Network<double> hidden(dev, spec, data.inputs, hidden_targets, data.counted);
  expect_same_oracle(net, hidden, w.data());

  // Another label at the first counted position (the sorted half's first token): another loss.
  ASSERT_NE(sorting.labels[2], kMaskedLabel);
  std::vector<double> changed_targets = data.targets;
  one_hot(changed_targets, 2, (sorting.labels[2] + 1) % 3);
  Network<double> changed(dev, spec, data.inputs, changed_targets, data.counted);
  EXPECT_NE(changed.evaluate(w.data()).loss, loss);
}

INSTANTIATE_TEST_SUITE_P(Losses, SequenceLoss, ::testing::Values(LossKind::mse, LossKind::ce),
                         [](const ::testing::TestParamInfo<LossKind>& loss) { return to_string(loss.param); });

// A wrong oracle must be caught: the checker is only worth something if it can fail.
class PerturbedHessian final : public Objective<double> {
 public:
  explicit PerturbedHessian(Network<double>& net) : net_(net) {}
  index_t dim() const override { return net_.dim(); }
  const Device& device() const override { return net_.device(); }
  double value_grad(const double* w, double* g) override { return net_.value_grad(w, g); }
  void hvp(const double* w, const double* V, index_t m, double* HV) override {
    net_.hvp(w, V, m, HV);
    blas::axpy(device(), dim() * m, 1e-4, V, HV);  // H + 1e-4 I: symmetric, but wrong
  }
  std::vector<double> quad(const double* w, const double* U, index_t m) override { return net_.quad(w, U, m); }
  void d3_pairs(const double* w, const double* U, index_t k, index_t first, index_t count, double* D,
                double* quads) override {
    net_.d3_pairs(w, U, k, first, count, D, quads);
  }

 private:
  Network<double>& net_;
};

TEST(OracleGradcheck, CatchesAWrongHessian) {
  const Device dev = Device::open("cpu");
  auto net = make_network<double>(dev, small_spec(Architecture::mlp, Activation::tanh, LossKind::mse, 3, true), 9);
  auto w = point(net);
  PerturbedHessian wrong(net);
  const GradcheckResult result = gradcheck(wrong, w.data(), 11);
  EXPECT_FALSE(result.passed({}));
}

class Oracle : public BackendTest {};

// hvp/quad/d3 of m directions at once equal the same queries one direction at a time.
TEST_P(Oracle, BatchedEqualsOneAtATime) {
  auto net = make_network<double>(device(), small_spec(Architecture::mlp, Activation::gelu, LossKind::ce, 3, true), 10,
                                  {.chunk = 0, .max_directions = 3});
  auto w = point(net);
  const index_t d = net.dim(), m = 5;
  const auto V = random_vector<double>(std::size_t(d * m), 5);
  Buffer<double> dV(device(), std::span<const double>(V)), HV(device(), d * m), single(device(), d);
  net.hvp(w.data(), dV.data(), m, HV.data());
  const auto batched = HV.to_host();
  const auto quads = net.quad(w.data(), dV.data(), m);
  for (index_t j = 0; j < m; ++j) {
    net.hvp(w.data(), dV.data() + j * d, 1, single.data());
    const auto one = single.to_host();
    for (index_t i = 0; i < d; ++i) EXPECT_NEAR(batched[std::size_t(j * d + i)], one[std::size_t(i)], 1e-13);
    EXPECT_NEAR(quads[std::size_t(j)], net.quad(w.data(), dV.data() + j * d, 1)[0], 1e-13);
  }
  // d3 with k = 3 (6 pairs, more than max_directions) against pairs computed two columns at a time.
  Buffer<double> D(device(), d * 6), D2(device(), d * 3);
  net.d3(w.data(), dV.data(), 3, D.data());
  const auto all = D.to_host();
  net.d3(w.data(), dV.data() + d, 2, D2.data());  // columns 1, 2: pairs (1,1) (1,2) (2,2)
  const auto sub = D2.to_host();
  for (index_t p = 0; p < 3; ++p)
    for (index_t i = 0; i < d; ++i)
      EXPECT_NEAR(all[std::size_t((3 + p) * d + i)], sub[std::size_t(p * d + i)], 1e-12);
  // A part of the pairs (1 … 4: (0,1) (0,2) (1,1) (1,2)), which combines with diagonals it computes apart
  // (the central flow's --central-pair-group, docs/design.md §6.10): the same columns.
  Buffer<double> part(device(), d * 4);
  net.d3_pairs(w.data(), dV.data(), 3, 1, 4, part.data(), nullptr);
  const auto slice = part.to_host();
  for (index_t p = 0; p < 4; ++p)
    for (index_t i = 0; i < d; ++i)
      EXPECT_NEAR(all[std::size_t((1 + p) * d + i)], slice[std::size_t(p * d + i)], 1e-12);
}

// The d3 pass returns u_iᵀHu_i from the jets it differentiates (docs/design.md §3, §6.4): quad()'s
// values to rounding, whether the pass holds every pair (the diagonal jets among them) or a part (the
// diagonal jets apart). A later part at the same w and U reuses those diagonal jets — the same columns
// as the whole pass, k fewer jets counted — and a write to U is seen: the next part runs along the new
// U (2U: quads ×4, columns ×4).
void expect_d3_returns_the_quads(const Device& dev, const ModelSpec& spec) {
  auto net = make_network<double>(dev, spec, 9, {.chunk = 4, .max_directions = 2});
  const auto w = point(net);
  const index_t d = net.dim(), k = 3, pairs = pair_count(k);
  const auto V = random_vector<double>(std::size_t(d * k), 12);
  Buffer<double> U(dev, std::span<const double>(V)), all(dev, d * pairs), part(dev, d * 3);
  const std::vector<double> want = net.quad(w.data(), U.data(), k);
  std::vector<double> from_all(k), from_part(k), from_doubled(k);
  net.d3_pairs(w.data(), U.data(), k, 0, pairs, all.data(), from_all.data());
  EXPECT_FALSE(net.diagonal_jets_held(w.data(), U.data(), k));  // the whole pass keeps none apart
  net.d3_pairs(w.data(), U.data(), k, 1, 2, part.data(), from_part.data());
  EXPECT_TRUE(net.diagonal_jets_held(w.data(), U.data(), k));
  for (index_t i = 0; i < k; ++i) {
    const double scale = std::max(1.0, std::abs(want[std::size_t(i)]));
    EXPECT_NEAR(from_all[std::size_t(i)], want[std::size_t(i)], 1e-12 * scale) << i;
    EXPECT_NEAR(from_part[std::size_t(i)], want[std::size_t(i)], 1e-12 * scale) << i;
  }
  CountingObjective<double> counted(net);
  counted.d3_pairs(w.data(), U.data(), k, 3, 3, part.data(), nullptr);  // pairs (1,1) (1,2) (2,2)
  EXPECT_EQ(counted.work().jets, 3);
  const auto whole = all.to_host(), last = part.to_host();
  for (std::size_t i = 0; i < last.size(); ++i) EXPECT_NEAR(last[i], whole[3 * std::size_t(d) + i], 1e-12 * (1 + std::abs(whole[i])));

  std::vector<double> doubled = V;
  for (double& x : doubled) x *= 2;
  U.upload(doubled);
  EXPECT_FALSE(net.diagonal_jets_held(w.data(), U.data(), k));
  counted.d3_pairs(w.data(), U.data(), k, 3, 3, part.data(), from_doubled.data());
  EXPECT_EQ(counted.work().jets, 3 + 3 + k);
  const auto again = part.to_host();
  for (std::size_t i = 0; i < again.size(); ++i)
    EXPECT_NEAR(again[i], 4 * whole[3 * std::size_t(d) + i], 1e-11 * (1 + std::abs(whole[3 * std::size_t(d) + i])));
  for (index_t i = 0; i < k; ++i)
    EXPECT_NEAR(from_doubled[std::size_t(i)], 4 * want[std::size_t(i)], 1e-11 * std::max(1.0, std::abs(want[std::size_t(i)])));
}
TEST_P(Oracle, D3ReturnsTheQuadsAndKeepsItsDiagonalJetsMlp) {
  expect_d3_returns_the_quads(device(), small_spec(Architecture::mlp, Activation::gelu, LossKind::ce, 3, true));
}
TEST_P(Oracle, D3ReturnsTheQuadsAndKeepsItsDiagonalJetsCnn) {
  expect_d3_returns_the_quads(device(), small_spec(Architecture::cnn, Activation::tanh, LossKind::mse, 3, true));
}

// Processing examples in chunks (and directions in groups) changes only rounding.
void expect_chunked_equals_unchunked(const Device& dev, const ModelSpec& spec, NetworkOptions options) {
  auto full = make_network<double>(dev, spec, 11);
  auto chunked = make_network<double>(dev, spec, 11, options);
  auto w = point(full);
  const index_t d = full.dim();
  const auto V = random_vector<double>(std::size_t(d * 2), 6);
  Buffer<double> dV(dev, std::span<const double>(V));
  Buffer<double> a(dev, d * 3), b(dev, d * 3);
  EXPECT_NEAR(full.value_grad(w.data(), a.data()), chunked.value_grad(w.data(), b.data()), 1e-14);
  auto near = [](const std::vector<double>& x, const std::vector<double>& y) {
    for (std::size_t i = 0; i < x.size(); ++i) EXPECT_NEAR(x[i], y[i], 1e-13 * (1 + std::abs(y[i])));
  };
  near(a.to_host(), b.to_host());
  full.hvp(w.data(), dV.data(), 2, a.data());
  chunked.hvp(w.data(), dV.data(), 2, b.data());
  near(a.to_host(), b.to_host());
  full.d3(w.data(), dV.data(), 2, a.data());
  chunked.d3(w.data(), dV.data(), 2, b.data());
  near(a.to_host(), b.to_host());
  near(full.quad(w.data(), dV.data(), 2), chunked.quad(w.data(), dV.data(), 2));
  EXPECT_EQ(full.evaluate(w.data()).accuracy, chunked.evaluate(w.data()).accuracy);
}
TEST_P(Oracle, ChunkedEqualsUnchunked) {
  expect_chunked_equals_unchunked(device(), small_spec(Architecture::mlp, Activation::silu, LossKind::mse, 3, true),
                                  {.chunk = 4, .max_directions = 16});
}
// The attention layers keep jets in scratch sized by the chunk and the direction group: both vary.
TEST_P(Oracle, ChunkedEqualsUnchunkedVit) {
  expect_chunked_equals_unchunked(device(), small_spec(Architecture::vit, Activation::gelu, LossKind::ce, 3, true),
                                  {.chunk = 4, .max_directions = 2});
}

// The float32 engine computes the same quantities to float32 accuracy.
void expect_float32_agrees_with_float64(const Device& dev, const ModelSpec& spec) {
  auto net64 = make_network<double>(dev, spec, 12);
  auto net32 = make_network<float>(dev, spec, 12);
  const auto w64 = net64.initial_parameters(4);
  const std::vector<float> w32(w64.begin(), w64.end());
  Buffer<double> dw64(dev, std::span<const double>(w64));
  Buffer<float> dw32(dev, std::span<const float>(w32));
  const index_t d = net64.dim();
  const auto V = random_vector<double>(std::size_t(d * 2), 8);
  const std::vector<float> Vf(V.begin(), V.end());
  Buffer<double> dV64(dev, std::span<const double>(V)), out64(dev, d * 3);
  Buffer<float> dV32(dev, std::span<const float>(Vf)), out32(dev, d * 3);
  auto close = [](const std::vector<double>& x, const std::vector<float>& y, std::size_t count) {
    double err = 0, scale = 0;
    for (std::size_t i = 0; i < count; ++i) err = std::max(err, std::abs(x[i] - y[i])), scale = std::max(scale, std::abs(x[i]));
    EXPECT_LE(err, 1e-4 * scale);
  };
  EXPECT_NEAR(net64.value_grad(dw64.data(), out64.data()), net32.value_grad(dw32.data(), out32.data()), 1e-5);
  close(out64.to_host(), out32.to_host(), std::size_t(d));
  net64.hvp(dw64.data(), dV64.data(), 2, out64.data());
  net32.hvp(dw32.data(), dV32.data(), 2, out32.data());
  close(out64.to_host(), out32.to_host(), std::size_t(2 * d));
  net64.d3(dw64.data(), dV64.data(), 2, out64.data());
  net32.d3(dw32.data(), dV32.data(), 2, out32.data());
  close(out64.to_host(), out32.to_host(), std::size_t(3 * d));
}
TEST_P(Oracle, Float32AgreesWithFloat64) {
  expect_float32_agrees_with_float64(device(), small_spec(Architecture::mlp, Activation::gelu, LossKind::ce, 3, true));
}
TEST_P(Oracle, Float32AgreesWithFloat64Vit) {  // the softmax and LayerNorm in float32
  expect_float32_agrees_with_float64(device(), small_spec(Architecture::vit, Activation::gelu, LossKind::ce, 3, true));
}

// Same parameters in, same bits out: the primal cache and the kernels are deterministic.
TEST_P(Oracle, RepeatedQueriesAreBitwiseIdentical) {
  auto net = make_network<double>(device(), small_spec(Architecture::mlp, Activation::tanh, LossKind::mse, 3, true), 10);
  auto w = point(net);
  const index_t d = net.dim();
  Buffer<double> g1(device(), d), g2(device(), d);
  net.value_grad(w.data(), g1.data());
  auto moved = point(net, 99);
  net.value_grad(moved.data(), g2.data());  // invalidates the cache
  net.value_grad(w.data(), g2.data());
  EXPECT_EQ(g1.to_host(), g2.to_host());
}

TEST_P(Oracle, InitializationMatchesPyTorchBounds) {
  auto net = make_network<double>(device(), small_spec(Architecture::mlp, Activation::gelu, LossKind::mse, 3, true), 4);
  const auto w = net.initial_parameters(1);
  ASSERT_EQ(index_t(w.size()), 5 * 6 + 6 + 6 * 6 + 6 + 6 * 3 + 3);
  // First Linear: fan_in 5, bound 1/√5; second: fan_in 6.
  for (std::size_t i = 0; i < 36; ++i) EXPECT_LE(std::abs(w[i]), 1 / std::sqrt(5.0));
  for (std::size_t i = 36; i < 78; ++i) EXPECT_LE(std::abs(w[i]), 1 / std::sqrt(6.0));
  EXPECT_EQ(w, net.initial_parameters(1));
  EXPECT_NE(w, net.initial_parameters(2));
}

CFLOW_TEST_ON_ALL_BACKENDS(Oracle);

}  // namespace
}  // namespace cflow
