// `cflow hessian`: the top-k eigenvalues of the raw Hessian of a model at its initialization, by block
// LOBPCG on batched HVPs. On random data by default (like gradcheck), or on a real data set with
// --data (the sorting task for --arch transformer, with its masked positions). With --dense (small
// models), also forms the Hessian explicitly, diagonalizes it and compares:
// exit 1 if they disagree beyond --dense-tolerance, or if LOBPCG did not converge.
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdio>
#include <iostream>
#include <optional>

#include "cflow/data/dataset.h"
#include "cflow/solvers/dense_hessian.h"
#include "cflow/engine/gradcheck.h"
#include "cflow/engine/network.h"
#include "host/cli/cli.h"
#include "host/run/config.h"
#include "host/run/memory_check.h"
#include "host/cli/model_flags.h"
#include "host/cli/sorting_flags.h"

namespace cflow::cli {

namespace {
struct HessianOptions {
  ModelOptions model;
  int top = 1;
  index_t n = 1000;
  std::uint64_t seed = 0;
  std::string device = "auto";
  std::string dtype = "f64";
  std::optional<double> tolerance;  // LOBPCG residual tolerance; default by dtype
  int max_iterations = 200;
  std::string data = "random";
  std::string data_dir;
  SortingFlags sorting;
  bool dense = false;
  std::optional<double> dense_tolerance;  // largest accepted relative difference; default by dtype
  index_t dense_block = 64;
  bool json = false;

  bool is_float32() const { return dtype == "f32"; }
  double lobpcg_tolerance() const { return tolerance.value_or(is_float32() ? 1e-4 : 1e-8); }
  double dense_agreement() const { return dense_tolerance.value_or(is_float32() ? 1e-3 : 1e-6); }
};

// --data: random examples (the default, as in gradcheck) or one of the run's data sets.
std::vector<std::string> random_or_data_sets() {
  std::vector<std::string> names{"random"};
  names.insert(names.end(), kDataSetNames.begin(), kDataSetNames.end());
  return names;
}

// The model and the training set it is evaluated on.
struct Problem {
  ModelSpec spec;
  std::vector<double> inputs, targets;  // [features × n], [outputs × positions × n]
  std::vector<double> counted;          // sorting: [positions × n], 0 at a masked position; else empty
  std::string data;                     // e.g. "1000 random examples"
};

void check_size(const HessianOptions& o, const ModelSpec& spec) {
  run::check_memory(run::network_bytes(spec, double(o.n), o.is_float32() ? 4 : 8, 8.0 + 4 * o.top),
                    "the model, data and eigenvectors", "--width, --n or --top");
}

Problem make_problem(const HessianOptions& o) {
  Problem p;
  if (o.model.arch == "transformer" || o.data == "sorting") {
    require_transformer_with_sorting(o.model.arch, o.data);
    p.spec = sorting_spec(o.model, o.sorting, o.seed);
    check_size(o, p.spec);
    RandomData task = sorting_data(p.spec, o.sorting, o.n, o.seed);
    p.inputs = std::move(task.inputs);
    p.targets = std::move(task.targets);
    p.counted = std::move(task.counted);
    p.data = std::to_string(o.n) + " sorting sequences";
    return p;
  }
  if (o.data == "random") {
    p.spec = o.model.spec(gradcheck_input_shape(o.model));
    check_size(o, p.spec);
    RandomData random = random_data(p.spec, o.n, o.seed);
    p.inputs = std::move(random.inputs);
    p.targets = std::move(random.targets);
    p.data = std::to_string(o.n) + " random examples";
    return p;
  }
  DataSpec data;
  data.name = o.data;
  data.data_dir = o.data_dir;
  data.n_train = std::size_t(o.n);
  data.classes = parse_class_choice(o.model.classes);
  data.seed = o.seed;
  DataSplits splits = load_dataset(data);  // the data sets' sizes are capped by their files
  p.spec = o.model.spec(splits.train.shape());
  p.targets = make_targets(splits.train, p.spec.loss);
  p.inputs = std::move(splits.train.inputs);
  p.data = std::to_string(o.n) + " " + o.data + " training examples";
  return p;
}

template <class T>
nlohmann::json to_json(const std::vector<T>& values) {
  nlohmann::json out = nlohmann::json::array();
  for (const T x : values) out.push_back(double(x));
  return out;
}

// What one `cflow hessian` computed, for the two printers.
template <class T>
struct HessianReport {
  const HessianOptions& o;
  const Problem& p;
  const Device& dev;
  index_t d;
  const HessianSpectrum<T>& r;
  std::vector<T> dense_top;  // the dense top-k, when formed
  bool agrees;
};

template <class T>
void print_json(const HessianReport<T>& h) {
  const HessianOptions& o = h.o;
  const HessianSpectrum<T>& r = h.r;
  const LobpcgResult<T>& s = r.solution;
  nlohmann::json out{{"model", describe(h.p.spec)},
                     {"parameters", h.d},
                     {"examples", o.n},
                     {"data", o.data},
                     {"dtype", o.dtype},
                     {"device", h.dev.description()},
                     {"seed", o.seed},
                     {"loss", double(r.loss)},
                     {"k", o.top},
                     {"tolerance", o.lobpcg_tolerance()},
                     {"eigenvalues", to_json(s.eigenvalues)},
                     {"residuals", s.residuals},
                     {"converged", s.converged},
                     {"iterations", s.iterations},
                     {"hvp_calls", s.operator_calls},
                     {"hvps", s.operator_applications},
                     {"seconds", r.solve_seconds}};
  if (r.has_dense)
    out["dense"] = {{"eigenvalues", to_json(h.dense_top)},
                    {"smallest_eigenvalue", double(r.dense_eigenvalues.back())},
                    {"max_relative_difference", r.max_relative_difference},
                    {"tolerance", o.dense_agreement()},
                    {"agrees", h.agrees},
                    {"asymmetry", r.asymmetry},
                    {"hvp_calls", r.dense_operator_calls},
                    {"hvps", h.d},
                    {"seconds", r.dense_seconds}};
  std::cout << out.dump(2) << "\n";
}

template <class T>
void print_text(const HessianReport<T>& h) {
  const HessianOptions& o = h.o;
  const HessianSpectrum<T>& r = h.r;
  const LobpcgResult<T>& s = r.solution;
  const int digits = o.is_float32() ? 6 : 12;
  std::cout << "hessian: " << describe(h.p.spec) << ", " << h.d << " parameters, " << h.p.data << ", "
            << (o.is_float32() ? "float32" : "float64") << ", " << h.dev.description() << "\n";
  std::printf("loss at initialization (seed %llu): %.*e\n", static_cast<unsigned long long>(o.seed), digits,
              double(r.loss));
  std::printf("LOBPCG, top %d, tolerance %.3g: %s after %d iterations, %d HVP calls, %d HVPs, %.3g s\n", o.top,
              o.lobpcg_tolerance(), s.converged ? "converged" : "NOT converged", s.iterations, s.operator_calls,
              s.operator_applications, r.solve_seconds);
  if (r.has_dense)
    std::printf("%4s %*s %10s %*s %10s\n", "#", digits + 8, "eigenvalue", "residual", digits + 8, "dense", "rel. diff");
  else
    std::printf("%4s %*s %10s\n", "#", digits + 8, "eigenvalue", "residual");
  const std::vector<double> differences =
      r.has_dense ? relative_differences<T>(s.eigenvalues, h.dense_top) : std::vector<double>{};
  for (std::size_t j = 0; j < s.eigenvalues.size(); ++j) {
    std::printf("%4zu %*.*e %10.2e", j + 1, digits + 8, digits, double(s.eigenvalues[j]), s.residuals[j]);
    if (r.has_dense) std::printf(" %*.*e %10.2e", digits + 8, digits, double(h.dense_top[j]), differences[j]);
    std::printf("\n");
  }
  if (!r.has_dense) return;
  std::printf("dense: %lld×%lld Hessian from %d HVP calls (%lld HVPs), asymmetry %.1e, smallest eigenvalue "
              "%.*e, %.3g s\n",
              static_cast<long long>(h.d), static_cast<long long>(h.d), r.dense_operator_calls,
              static_cast<long long>(h.d), r.asymmetry, digits, double(r.dense_eigenvalues.back()), r.dense_seconds);
  std::printf("max relative difference LOBPCG vs dense: %.2e (tolerance %.3g): %s\n", r.max_relative_difference,
              o.dense_agreement(), h.agrees ? "agree" : "DISAGREE");
}

// A usage error in the sizes (exit 2), or nothing.
std::optional<std::string> size_error(const HessianOptions& o, index_t d) {
  if (o.dense && d > kMaxDenseHessianDimension)
    return "--dense forms the d×d Hessian and is meant for small models; this one has d = " + std::to_string(d) +
           " parameters, above the limit of " + std::to_string(kMaxDenseHessianDimension) +
           " (make it smaller, e.g. --width 8)";
  if (o.top > d)
    return "--top " + std::to_string(o.top) + " exceeds the number of parameters (" + std::to_string(d) + ")";
  return std::nullopt;
}

template <class T>
int run_hessian(const HessianOptions& o, const Problem& p) {
  const Device dev = Device::open(o.device);
  const std::vector<T> inputs(p.inputs.begin(), p.inputs.end()), targets(p.targets.begin(), p.targets.end());
  Network<T> net(dev, p.spec, inputs, targets, std::vector<T>(p.counted.begin(), p.counted.end()));
  const index_t d = net.dim();
  if (const auto error = size_error(o, d)) {
    std::cerr << "cflow hessian: error: " << *error << "\n";
    return 2;
  }
  Buffer<T> w(dev, std::span<const T>(net.initial_parameters(o.seed)));
  HessianSpectrumOptions options;
  options.lobpcg = {.k = o.top, .tolerance = o.lobpcg_tolerance(), .max_iterations = o.max_iterations,
                    .seed = unsigned(o.seed)};
  options.dense = o.dense;
  options.dense_block = o.dense_block;
  const HessianSpectrum<T> r = hessian_spectrum<T>(net, w.data(), options);
  const LobpcgResult<T>& s = r.solution;
  const HessianReport<T> report{
      o, p, dev, d, r,
      std::vector<T>(r.dense_eigenvalues.begin(),
                     r.dense_eigenvalues.begin() + std::ptrdiff_t(r.has_dense ? s.eigenvalues.size() : 0)),
      !r.has_dense || r.max_relative_difference <= o.dense_agreement()};
  if (o.json)
    print_json(report);
  else
    print_text(report);
  if (!s.converged) {
    double worst = 0;
    for (double x : s.residuals) worst = std::max(worst, x);
    std::cerr << "cflow hessian: LOBPCG did not converge in " << o.max_iterations
              << " iterations (largest relative residual " << worst << "); raise --max-iterations or --tol\n";
  }
  return report.agrees && s.converged ? 0 : 1;
}
}  // namespace

Handler add_hessian_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("hessian", "Top eigenvalues of the Hessian of a model at its initialization");
  auto o = std::make_shared<HessianOptions>();
  o->model.register_options(*cmd);
  cmd->add_option("--top", o->top, "number k of largest eigenvalues")->capture_default_str()->check(kPositive);
  cmd->add_option("--n", o->n, "number of training examples")->capture_default_str()->check(kPositive);
  cmd->add_option("--seed", o->seed, "seed of data, weights and LOBPCG start")->capture_default_str();
  cmd->add_option("--data", o->data, "random or a data set (sorting goes with --arch transformer)")
      ->capture_default_str()
      ->check(CLI::IsMember(random_or_data_sets()));
  o->sorting.register_options(*cmd);
  cmd->add_option("--data-dir", o->data_dir, "folder of the data files (fashion-mnist: default " +
                                                  std::string(default_fashion_mnist_dir) + ")");
  cmd->add_option("--dtype", o->dtype, "f32 | f64")->capture_default_str()->check(CLI::IsMember({"f32", "f64"}));
  cmd->add_option("--tol", o->tolerance, "LOBPCG relative residual tolerance (default 1e-8 f64, 1e-4 f32)")
      ->check(kPositive);
  cmd->add_option("--max-iterations", o->max_iterations, "LOBPCG iteration limit")
      ->capture_default_str()
      ->check(kPositive);
  cmd->add_option("--device", o->device, "auto | cpu | cuda | cuda:N")->capture_default_str();
  cmd->add_flag("--dense", o->dense,
                "also form the Hessian explicitly (d ≤ " + std::to_string(kMaxDenseHessianDimension) +
                    "), diagonalize it and compare");
  cmd->add_option("--dense-tolerance", o->dense_tolerance,
                  "largest accepted relative difference to the dense eigenvalues (default 1e-6 f64, 1e-3 f32)")
      ->check(kNonNegative);
  cmd->add_option("--dense-block", o->dense_block, "identity columns per HVP call when forming the Hessian")
      ->capture_default_str()
      ->check(kPositive);
  cmd->add_flag("--json", o->json, "machine-readable output");
  return [o] {
    const Problem problem = make_problem(*o);
    return o->is_float32() ? run_hessian<float>(*o, problem) : run_hessian<double>(*o, problem);
  };
}

}  // namespace cflow::cli
