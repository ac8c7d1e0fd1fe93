// `cflow gradcheck`: like torch.autograd.gradcheck, one order further. Builds a model from flags on
// random data, draws random w, u, v, z and prints, in float64, the error of every oracle order
// against central finite differences and the residuals of the exact symmetries.
#include <nlohmann/json.hpp>

#include <cstdio>
#include <iostream>

#include "cflow/engine/gradcheck.h"
#include "cflow/engine/network.h"
#include "host/cli/cli.h"
#include "cflow/data/dataset.h"
#include "host/run/config.h"
#include "host/run/memory_check.h"
#include "host/cli/model_flags.h"
#include "host/cli/sorting_flags.h"

namespace cflow::cli {

namespace {
struct GradcheckOptions {
  ModelOptions model;
  index_t n = 16;
  std::uint64_t seed = 0;
  double step = 1e-5;
  std::string device = "auto";
  bool json = false;
  GradcheckTolerances tolerances;
  std::string data = "random";
  SortingFlags sorting;
};

// The model and its examples: random data's, or the sorting task's for the transformer.
ModelSpec problem_spec(const GradcheckOptions& o) {
  require_transformer_with_sorting(o.model.arch, o.data);
  return o.data == "random" ? o.model.spec(gradcheck_input_shape(o.model)) : sorting_spec(o.model, o.sorting, o.seed);
}
RandomData problem_data(const GradcheckOptions& o, const ModelSpec& spec) {
  return o.data == "random" ? random_data(spec, o.n, o.seed) : sorting_data(spec, o.sorting, o.n, o.seed);
}

int run_gradcheck(const GradcheckOptions& o) {
  const ModelSpec spec = problem_spec(o);
  warn_if_not_smooth(spec);
  run::check_memory(run::network_bytes(spec, double(o.n), 8, 16), "the model and data",
               "--width or --n");
  const Device dev = Device::open(o.device);
  const RandomData data = problem_data(o, spec);
  Network<double> net(dev, spec, data.inputs, data.targets, data.counted);
  Buffer<double> w(dev, std::span<const double>(net.initial_parameters(o.seed)));
  const GradcheckResult result = gradcheck(net, w.data(), o.seed + 1, o.step);
  const bool passed = result.passed(o.tolerances);
  auto tolerance = [&](const GradcheckEntry& e) {
    return e.is_symmetry ? o.tolerances.symmetry : o.tolerances.finite_difference;
  };
  if (o.json) {
    nlohmann::json out{{"model", describe(spec)}, {"parameters", net.dim()}, {"examples", o.n},
                       {"device", dev.description()}, {"step", o.step}, {"passed", passed}};
    for (const auto& e : result.entries)
      out["checks"].push_back({{"name", e.name}, {"reference", e.reference}, {"error", e.error},
                               {"tolerance", tolerance(e)}, {"passed", e.error <= tolerance(e)}});
    std::cout << out.dump(2) << "\n";
  } else {
    std::cout << "gradcheck: " << describe(spec) << ", " << net.dim() << " parameters, " << o.n
              << " examples, float64, " << dev.description() << "\n";
    std::printf("%-36s %12s %10s  %s\n", "quantity", "rel. error", "tolerance", "");
    for (const auto& e : result.entries)
      std::printf("%-36s %12.3e %10.0e  %s\n", e.name.c_str(), e.error, tolerance(e),
                  e.error <= tolerance(e) ? "ok" : "FAIL");
    std::cout << (passed ? "all checks passed" : "SOME CHECKS FAILED") << "\n";
  }
  return passed ? 0 : 1;
}
}  // namespace

Handler add_gradcheck_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("gradcheck", "Check every derivative order against finite differences (float64)");
  auto o = std::make_shared<GradcheckOptions>();
  o->model.width = 8;
  o->model.register_options(*cmd);
  cmd->add_option("--n", o->n, "number of random examples")->capture_default_str()->check(kPositive);
  cmd->add_option("--seed", o->seed, "seed of data, weights and directions")->capture_default_str();
  cmd->add_option("--step", o->step, "finite-difference step along unit directions")
      ->capture_default_str()
      ->check(CLI::Range(1e-10, 1e-1));
  cmd->add_option("--tolerance", o->tolerances.finite_difference, "largest accepted finite-difference error")
      ->capture_default_str()
      ->check(kPositive);
  cmd->add_option("--symmetry-tolerance", o->tolerances.symmetry, "largest accepted symmetry residual")
      ->capture_default_str()
      ->check(kPositive);
  cmd->add_option("--data", o->data, "random (standard-normal inputs, random labels) | sorting (--arch transformer)")
      ->capture_default_str()
      ->check(CLI::IsMember({"random", "sorting"}));
  o->sorting.register_options(*cmd);
  cmd->add_option("--device", o->device, "auto | cpu | cuda | cuda:N")->capture_default_str();
  cmd->add_flag("--json", o->json, "machine-readable output");
  return [o] { return run_gradcheck(*o); };
}

}  // namespace cflow::cli
