#include "host/run/config.h"
#include "host/run/config_toml.h"

#include <toml++/toml.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <regex>
#include <set>
#include <sstream>
#include <type_traits>

namespace cflow::run {

namespace {

std::string quoted(std::string_view text) { return "'" + std::string(text) + "'"; }

std::string join(const std::vector<std::string>& items, std::string_view separator) {
  std::string out;
  for (std::size_t i = 0; i < items.size(); ++i) out += (i ? std::string(separator) : "") + items[i];
  return out;
}

std::vector<std::string> split(std::string_view text, char separator) {
  std::vector<std::string> items;
  std::string item;
  for (char c : text) {
    if (c == separator) {
      items.push_back(item);
      item.clear();
    } else if (c != ' ') {
      item += c;
    }
  }
  items.push_back(item);
  return items;
}

// Shortest text that reads back as the same double.
std::string format_real(double x) {
  char buffer[32];
  for (int digits = 1; digits <= 17; ++digits) {
    std::snprintf(buffer, sizeof buffer, "%.*g", digits, x);
    if (std::strtod(buffer, nullptr) == x) break;
  }
  return buffer;
}

std::optional<std::int64_t> to_integer(std::string_view text) {
  std::int64_t value = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (error != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return value;
}

std::optional<double> to_real(std::string_view text) {
  const std::string s(text);
  if (s.empty() || std::isspace(static_cast<unsigned char>(s.front()))) return std::nullopt;
  char* end = nullptr;
  const double value = std::strtod(s.c_str(), &end);
  if (end != s.c_str() + s.size() || !std::isfinite(value)) return std::nullopt;
  return value;
}

std::optional<bool> to_bool(std::string_view text) {
  if (text == "true" || text == "1" || text == "yes" || text == "on") return true;
  if (text == "false" || text == "0" || text == "no" || text == "off") return false;
  return std::nullopt;
}

[[noreturn]] void expected(const std::string& what, std::string_view text) {
  throw ConfigError("expected " + what + ", got " + quoted(text));
}

// ---- key builders ---------------------------------------------------------------------------------

// A key whose set and get the caller fills in.
Key custom_key(std::string name, std::string group, std::string value_name, std::string help) {
  Key key;
  key.name = std::move(name);
  key.group = std::move(group);
  key.value_name = std::move(value_name);
  key.help = std::move(help);
  return key;
}

constexpr std::int64_t kNoLimit = std::numeric_limits<std::int64_t>::max();

template <class M>
Key integer_key(std::string name, std::string group, std::string help, M RunConfig::*member, std::int64_t low,
                std::int64_t high = kNoLimit) {
  // Bounds from 2^20 up are only guards against overflow: the message names them only when hit.
  const std::string lower = "an integer >= " + std::to_string(low);
  const std::string both = "an integer in [" + std::to_string(low) + ", " + std::to_string(high) + "]";
  const bool guard_only = high >= (std::int64_t{1} << 20);
  Key key = custom_key(std::move(name), std::move(group), "N", std::move(help));
  key.set = [=](RunConfig& c, std::string_view text) {
    if constexpr (std::is_unsigned_v<M>) {  // the full range of an unsigned 64-bit seed
      std::uint64_t value = 0;
      const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
      if (error != std::errc() || end != text.data() + text.size()) expected(lower, text);
      c.*member = static_cast<M>(value);
    } else {
      const auto value = to_integer(text);
      if (!value || *value < low) expected(guard_only ? lower : both, text);
      if (*value > high) expected(both, text);
      c.*member = static_cast<M>(*value);
    }
  };
  key.get = [=](const RunConfig& c) { return nlohmann::ordered_json(c.*member); };
  return key;
}

// A real number with a lower bound (open or closed) and an optional upper bound.
Key real_key(std::string name, std::string group, std::string help, double RunConfig::*member, double low,
             bool low_open, std::optional<double> high = std::nullopt, bool high_open = false) {
  std::string range;
  if (high) {
    range = std::string("a number in ") + (low_open ? "(" : "[") + format_real(low) + ", " + format_real(*high) +
            (high_open ? ")" : "]");
  } else {
    range = std::string("a number ") + (low_open ? "> " : ">= ") + format_real(low);
  }
  Key key = custom_key(std::move(name), std::move(group), "X", std::move(help));
  key.set = [=](RunConfig& c, std::string_view text) {
    const auto value = to_real(text);
    if (!value || (low_open ? *value <= low : *value < low) ||
        (high && (high_open ? *value >= *high : *value > *high))) {
      expected(range, text);
    }
    c.*member = *value;
  };
  key.get = [=](const RunConfig& c) { return nlohmann::ordered_json(c.*member); };
  return key;
}

Key choice_key(std::string name, std::string group, std::string help, std::string RunConfig::*member,
               std::vector<std::string> choices) {
  const std::string range = "one of " + join(choices, ", ");
  Key key = custom_key(std::move(name), std::move(group), join(choices, "|"), std::move(help));
  key.set = [=](RunConfig& c, std::string_view text) {
    if (std::find(choices.begin(), choices.end(), text) == choices.end()) expected(range, text);
    c.*member = std::string(text);
  };
  key.get = [=](const RunConfig& c) { return nlohmann::ordered_json(c.*member); };
  return key;
}

Key switch_key(std::string name, std::string group, std::string help, bool RunConfig::*member) {
  Key key = custom_key(std::move(name), std::move(group), "", std::move(help));
  key.set = [=](RunConfig& c, std::string_view text) {
    const auto value = to_bool(text);
    if (!value) expected("true or false", text);
    c.*member = *value;
  };
  key.get = [=](const RunConfig& c) { return nlohmann::ordered_json(c.*member); };
  return key;
}

Key text_key(std::string name, std::string group, std::string value_name, std::string help,
             std::string RunConfig::*member) {
  Key key = custom_key(std::move(name), std::move(group), std::move(value_name), std::move(help));
  key.set = [=](RunConfig& c, std::string_view text) { c.*member = std::string(text); };
  key.get = [=](const RunConfig& c) { return nlohmann::ordered_json(c.*member); };
  return key;
}

// An integer >= 0, or `word` standing for the value `word_value` (outside that range).
Key integer_or_word_key(std::string name, std::string group, std::string help, std::int64_t RunConfig::*member,
                        std::string word, std::int64_t word_value) {
  Key key = custom_key(std::move(name), std::move(group), "N|" + word, std::move(help));
  key.set = [=](RunConfig& c, std::string_view text) {
    if (text == word) {
      c.*member = word_value;
      return;
    }
    const auto value = to_integer(text);
    if (!value || *value < 0) expected("an integer >= 0 or '" + word + "'", text);
    c.*member = *value;
  };
  key.get = [=](const RunConfig& c) {
    return c.*member == word_value ? nlohmann::ordered_json(word) : nlohmann::ordered_json(c.*member);
  };
  return key;
}

Key resumable(Key key) {
  key.on_resume = true;
  return key;
}

// A list of distinct step numbers >= 0, kept sorted.
Key steps_list_key(std::string name, std::string group, std::string help,
                   std::vector<std::int64_t> RunConfig::*member) {
  Key key = custom_key(std::move(name), std::move(group), "LIST", std::move(help));
  key.set = [=](RunConfig& c, std::string_view text) {
    std::set<std::int64_t> steps;
    if (!text.empty()) {
      for (const std::string& item : split(text, ',')) {
        const auto value = to_integer(item);
        if (!value || *value < 0) expected("a comma-separated list of step numbers >= 0", text);
        steps.insert(*value);
      }
    }
    c.*member = std::vector<std::int64_t>(steps.begin(), steps.end());
  };
  key.get = [=](const RunConfig& c) { return nlohmann::ordered_json(c.*member); };
  return key;
}

// <process>-<name> for every process and every name of kPerProcessEigenKeys, parsed by the key
// <name> itself and kept as text in RunConfig::process_eig; 'global' (the default) follows <name>.
std::vector<Key> per_process_eigen_keys(const std::vector<Key>& table, const std::string& group) {
  std::vector<Key> generated;
  for (const auto& process : kProcessChoices) {
    for (const char* base_name : kPerProcessEigenKeys) {
      const Key base = *std::find_if(table.begin(), table.end(), [&](const Key& k) { return k.name == base_name; });
      const std::string name = std::string(process.name) + "-" + base.name;
      Key key = custom_key(name, group, base.value_name + "|" + kGlobalValue,
                           std::string(process.name) + " only: --" + base.name + " for this process ('" +
                               kGlobalValue + "': the value of --" + base.name + ")");
      key.set = [base, name](RunConfig& c, std::string_view text) {
        if (text == kGlobalValue) {
          c.process_eig.erase(name);
          return;
        }
        RunConfig scratch;
        try {
          base.set(scratch, text);
        } catch (const ConfigError& e) {
          throw ConfigError(std::string(e.what()) + " (or '" + kGlobalValue + "')");
        }
        c.process_eig[name] = std::string(text);
      };
      key.get = [base, name](const RunConfig& c) {
        const auto it = c.process_eig.find(name);
        if (it == c.process_eig.end()) return nlohmann::ordered_json(kGlobalValue);
        RunConfig scratch;
        base.set(scratch, it->second);
        return base.get(scratch);
      };
      generated.push_back(std::move(key));
    }
  }
  return generated;
}

// The keys a branched run must share with its origin (host/run/plan.h): every data and model key
// but the data's folder (the same files may move), the seed (it draws synthetic data and the
// examples kept), the optimizer kind (its state is loaded) and the warm start (it numbers the steps).
void mark_fixed_on_branch(std::vector<Key>& table, const std::string& data, const std::string& model) {
  for (Key& key : table)
    key.fixed_on_branch = ((key.group == data || key.group == model) && key.name != "data-dir") ||
                          key.name == "seed" || key.name == "opt" || key.name == "warm-start";
}

std::vector<Key> make_keys() {
  const std::string data = "Data", model = "Model", optimizer = "Optimizer", processes = "Processes",
                    eig = "Eigenvalues", process_eig = "Eigenvalues per process", flows = "Flows",
                    run = "Run", branching = "Branching";
  std::vector<Key> k;
  k.push_back(
      choice_key("data", data, "data set", &RunConfig::data, kDataSetNames));
  k.push_back(text_key("data-dir", data, "DIR",
                       "folder of the data files (fashion-mnist: " + std::string(default_fashion_mnist_dir) +
                           "; cifar10: cifar-10-batches-bin or its parent)",
                       &RunConfig::data_dir));
  k.push_back(integer_key("n", data, "training examples (a multiple of the classes)", &RunConfig::n, 1));
  {
    Key key = custom_key(
        "classes", data, "N|binary|auto",
        "classes kept: the first N labels, or 'binary' (classes 0 and 1, one output); auto: 2 for moons, the vocabulary for sorting, else 4");
    key.set = [](RunConfig& c, std::string_view text) {
      if (text == "auto") {
        c.classes = "auto";
        return;
      }
      try {
        parse_class_choice(text);
      } catch (const DataError&) {
        expected("an integer >= 2, 'binary' or 'auto'", text);
      }
      c.classes = std::string(text);
    };
    key.get = [](const RunConfig& c) {
      const auto n = to_integer(c.classes);
      return n ? nlohmann::ordered_json(*n) : nlohmann::ordered_json(c.classes);
    };
    k.push_back(std::move(key));
  }
  k.push_back(integer_or_word_key("n-test", data,
                                  "test examples (a multiple of the classes); 'all': every test example of the kept "
                                  "classes (synthetic data: as many as --n); 0: no test set",
                                  &RunConfig::n_test, "all", kAllTestExamples));
  k.push_back(choice_key("loss", data, "loss: mean squared error (1/2 sum over outputs) or cross-entropy",
                         &RunConfig::loss, choice_names(kLossChoices)));
  k.push_back(real_key("data-noise", data, "synthetic data: noise around the arcs / class means",
                       &RunConfig::data_noise, 0, false));
  k.push_back(integer_key("data-dim", data, "gaussian data: input dimension", &RunConfig::data_dim, 1, 1 << 20));
  k.push_back(integer_key("vocab-size", data, "sorting: tokens 0 .. N-1 (the classes)", &RunConfig::vocab_size, 2,
                          1 << 16));
  k.push_back(integer_key("length", data, "sorting: tokens to sort (sequences of 2N-1 tokens)", &RunConfig::length, 1,
                          1 << 12));

  k.push_back(choice_key("arch", model, "architecture", &RunConfig::arch, choice_names(kArchitectureChoices)));
  k.push_back(integer_key("width", model, "MLP hidden width; CNN and ResNet base channels; ViT features",
                          &RunConfig::width, 1, 1 << 20));
  k.push_back(integer_key("depth", model, "MLP hidden layers; ResNet blocks per stage; ViT blocks", &RunConfig::depth,
                          0, 64));
  k.push_back(integer_key("heads", model, "ViT and transformer attention heads (must divide width)", &RunConfig::heads,
                          1, 1 << 10));
  k.push_back(integer_key("patch", model, "ViT patch side (must divide the image height and width)",
                          &RunConfig::patch, 1, 1 << 10));
  k.push_back(real_key("output-scale", model, "transformer: multiplies the head's initial weights (reference: 0)",
                       &RunConfig::output_scale, 0, false));
  k.push_back(choice_key("act", model, "activation (flows need a smooth one)", &RunConfig::act,
                         choice_names(kActivationChoices)));
  k.push_back(switch_key("no-bias", model, "MLP layers without biases", &RunConfig::no_bias));

  k.push_back(choice_key("opt", optimizer, "optimizer", &RunConfig::opt, choice_names(kOptimizerChoices)));
  k.push_back(real_key("lr", optimizer, "learning rate", &RunConfig::lr, 0, true));
  k.push_back(real_key("beta2", optimizer, "RMSProp: decay of the squared-gradient average", &RunConfig::beta2, 0, true,
                       1.0, true));
  k.push_back(real_key("eps", optimizer, "RMSProp: added to sqrt(nu) (flows need nu > 0 or eps > 0)", &RunConfig::eps,
                       0, false));
  k.push_back(
      switch_key("bias-correction", optimizer, "RMSProp: divide nu by 1 - beta2^t", &RunConfig::bias_correction));

  {
    Key key = custom_key("runs", processes, "LIST",
                         "processes, comma-separated: " + joined_choice_names(kProcessChoices, ", "));
    key.set = [](RunConfig& c, std::string_view text) {
      const std::vector<std::string> names = split(text, ',');
      const std::string range =
          "a comma-separated list of " + joined_choice_names(kProcessChoices, ", ") + ", each at most once";
      const std::vector<std::string> valid = choice_names(kProcessChoices);
      std::set<std::string> seen;
      for (const std::string& name : names) {
        if (std::find(valid.begin(), valid.end(), name) == valid.end() || !seen.insert(name).second) {
          expected(range, text);
        }
      }
      c.runs = names;
    };
    key.get = [](const RunConfig& c) { return nlohmann::ordered_json(c.runs); };
    k.push_back(std::move(key));
  }
  k.push_back(resumable(integer_key("steps", processes, "steps to log (a resumed run may raise it)", &RunConfig::steps,
                                    1, std::int64_t{1} << 40)));
  k.push_back(integer_key("warm-start", processes, "discrete steps taken before the processes branch",
                          &RunConfig::warm_start, 0, 1 << 30));

  k.push_back(integer_key("eig-frequency", eig, "a full eigen-solve every N steps, Rayleigh refreshes in between",
                          &RunConfig::eig_frequency, 1, 1 << 30));
  k.push_back(
      integer_key("eig-initial-k", eig, "eigenvalues tracked at the start", &RunConfig::eig_initial_k, 1, 1000));
  k.push_back(real_key("eig-track-threshold", eig, "track every effective eigenvalue above this",
                       &RunConfig::eig_track_threshold, 0, true));
  {
    // docs/design.md §5: the reference's LOBPCG stops at ‖r‖ < t·10·d·(‖Ay‖ + λ) ≈ 20·d·t·λ.
    Key key = custom_key("eig-tol", eig, "X|auto",
                         "LOBPCG tolerance on the relative residual ‖Ay − λy‖/(|λ|·‖y‖), A = P^-1/2 H P^-1/2, "
                         "y = P^1/2 u (for GD: ‖Hu − λu‖/(λ‖u‖)); the reference code's --eig.tol t is X = 20·d·t "
                         "(d parameters); auto: 1e-8 (f64), 1e-4 (f32)");
    key.set = [](RunConfig& c, std::string_view text) {
      if (text == "auto") {
        c.eig_tol.reset();
        return;
      }
      const auto value = to_real(text);
      if (!value || *value <= 0 || *value >= 1) expected("a number in (0, 1) or 'auto'", text);
      c.eig_tol = *value;
    };
    key.get = [](const RunConfig& c) {
      return c.eig_tol ? nlohmann::ordered_json(*c.eig_tol) : nlohmann::ordered_json("auto");
    };
    k.push_back(std::move(key));
  }
  k.push_back(integer_key("eig-max-k", eig, "most eigenvalues tracked (columns of the eigenvalue series)",
                          &RunConfig::eig_max_k, 1, 1000));
  k.push_back(switch_key("no-track-discrete", eig,
                         "discrete and midpoint processes: no eigenvalues (effective_hessian_eigs NaN), one gradient "
                         "per step",
                         &RunConfig::no_track_discrete));
  k.push_back(switch_key("no-raw-eigs", eig, "do not log eigenvalues of the raw Hessian (a second solve for rmsprop)",
                         &RunConfig::no_raw_eigs));
  k.push_back(switch_key("central-eig-every-substep", eig,
                         "central flow: a full eigen-solve at every substep, stationary flow: at every fixed-point "
                         "iteration (else one per step, Rayleigh refreshes in between)",
                         &RunConfig::central_eig_every_substep));
  for (Key& key : per_process_eigen_keys(k, process_eig)) k.push_back(std::move(key));

  k.push_back(integer_key("central-nsubsteps", flows, "central flow: Euler substeps per step",
                          &RunConfig::central_nsubsteps, 1, 1 << 20));
  k.push_back(resumable(integer_key("central-pair-group", flows,
                                    "central and stationary flows: the k(k+1)/2 pairs of critical directions are "
                                    "streamed this many at a time (0: all at once), bounding memory by about "
                                    "(4*N + k) parameter-sized vectors instead of 2k(k+1); N < all costs more d3 "
                                    "passes",
                                    &RunConfig::central_pair_group, 0, 1 << 20)));
  k.push_back(real_key("sdcp-threshold", flows, "central flow: effective eigenvalues above this are critical",
                       &RunConfig::sdcp_threshold, 0, true));
  k.push_back(integer_key("stable-min-nsubsteps", flows, "stable flow: fewest substeps per step (more: ceil(2 S_eff))",
                          &RunConfig::stable_min_nsubsteps, 1, 1 << 20));
  k.push_back(real_key("stable-max-seff", flows, "stable flow: stops past this effective sharpness",
                       &RunConfig::stable_max_seff, 0, true));
  k.push_back(resumable(real_key("solver-max-seconds", flows,
                                 "a full eigen-solve or SDCP solve running longer stops its process (a diverging "
                                 "trajectory)",
                                 &RunConfig::solver_max_seconds, 0, true)));
  k.push_back(real_key("stationary-tol", flows,
                       "stationary flow: its fixed point nu = E[g*g] is reached when P changes by at most this in an "
                       "iteration (root-mean-square relative change)",
                       &RunConfig::stationary_tol, 0, true, 1.0, true));
  k.push_back(integer_key("stationary-max-iterations", flows,
                          "stationary flow: most fixed-point iterations per substep (more: the flow stops)",
                          &RunConfig::stationary_max_iterations, 1, 1 << 20));
  k.push_back(integer_key("stationary-memory", flows,
                          "stationary flow: how many past iterations Anderson acceleration of its fixed point combines "
                          "(0: the plain iteration)",
                          &RunConfig::stationary_memory, 0, 50));

  k.push_back(integer_key("seed", run, "seed of data order, synthetic data, weights and eigen-solver starts",
                          &RunConfig::seed, 0));
  k.push_back(choice_key("dtype", run, "precision", &RunConfig::dtype, {"f32", "f64"}));
  {
    Key key = resumable(
        custom_key("device", run, "auto|cpu|cuda|cuda:N", "compute device (auto: the first usable GPU, else the CPU)"));
    key.set = [](RunConfig& c, std::string_view text) {
      static const std::regex valid("auto|cpu|cuda(:[0-9]+)?");
      if (!std::regex_match(std::string(text), valid)) expected("auto, cpu, cuda or cuda:N", text);
      c.device = std::string(text);
    };
    key.get = [](const RunConfig& c) { return nlohmann::ordered_json(c.device); };
    k.push_back(std::move(key));
  }
  k.push_back(resumable(integer_key("threads", run,
                                    "CPU threads (0: OpenMP's default); results are bitwise reproducible for a given "
                                    "backend and thread count",
                                    &RunConfig::threads, 0, 4096)));
  k.push_back(switch_key("tf32", run,
                         "float32 GEMMs on TF32 tensor cores (CUDA; faster, ~1e-3 relative rounding of GEMM "
                         "inputs); ignored with a note on the CPU, refused with --dtype f64",
                         &RunConfig::tf32));
  k.push_back(resumable(choice_key("overlap-processes", run,
                                   "the processes step at once, each on its own CUDA stream and host thread, so one's "
                                   "host waits leave the GPU to the others; on the CPU they split --threads (each "
                                   "at least one) and each steps at that thread count, min(processes, threads) host "
                                   "threads taking the longest first (auto: on with one rank)",
                                   &RunConfig::overlap_processes, {"auto", "on", "off"})));
  k.push_back(integer_key("chunk", run, "examples per pass (0: all); bounds memory", &RunConfig::chunk, 0));
  k.push_back(integer_key("log-outputs", run,
                          "record each process's network outputs (logits) on the first K training examples "
                          "every step, <process>/outputs [steps x K x classes] (0: off; at most --n)",
                          &RunConfig::log_outputs, 0));
  k.push_back(text_key("out", run, "DIR", "run directory", &RunConfig::out));
  k.push_back(resumable(integer_key("checkpoint-every", run,
                                    "checkpoint every N steps (0: only at the end and on "
                                    "interrupt)",
                                    &RunConfig::checkpoint_every, 0)));
  k.push_back(resumable(steps_list_key("checkpoint-steps", run,
                                       "also checkpoint at these steps, comma-separated, and keep those "
                                       "checkpoints (to branch from them, --init-from; 0: the initial point)",
                                       &RunConfig::checkpoint_steps)));
  k.push_back(
      resumable(switch_key("no-plots", run, "do not run python/cflow_plot.py at the end", &RunConfig::no_plots)));
  k.push_back(resumable(switch_key("quiet", run, "no progress bar and no summary table", &RunConfig::quiet)));
  {
    Key key = resumable(custom_key("profile-steps", run, "A:B",
                                   "CUDA: cudaProfilerStart before step A and cudaProfilerStop after step B, for "
                                   "nsys profile --capture-range=cudaProfilerApi (README: Profiling with Nsight); "
                                   "ignored with a note on the CPU"));
    key.set = [](RunConfig& c, std::string_view text) {
      c.profile_first = c.profile_last = -1;
      if (text.empty()) return;
      const auto colon = text.find(':');
      const auto first = to_integer(text.substr(0, colon)), last = to_integer(text.substr(colon + 1));
      if (colon == std::string_view::npos || !first || !last || *first < 0 || *last < *first)
        expected("A:B, step numbers with 0 <= A <= B (e.g. 10:12)", text);
      c.profile_first = *first;
      c.profile_last = *last;
    };
    key.get = [](const RunConfig& c) {
      return nlohmann::ordered_json(
          c.profile_first < 0 ? std::string() : std::to_string(c.profile_first) + ":" + std::to_string(c.profile_last));
    };
    k.push_back(std::move(key));
  }
  k.push_back(resumable(switch_key("verbose", run, "also print the steady-state device traffic per step of each process",
                                   &RunConfig::verbose)));

  k.push_back(text_key("init-from", branching, "RUNDIR",
                       "start every process from a checkpoint of the run in RUNDIR (same data, model, seed, "
                       "--opt and --warm-start); empty: from the seed",
                       &RunConfig::init_from));
  k.push_back(integer_or_word_key("init-step", branching,
                                  "--init-from: the checkpoint at this step, or the last one before it; the step "
                                  "numbers continue from it",
                                  &RunConfig::init_step, "newest", kNewestCheckpoint));
  {
    std::vector<std::string> sources{kOwnProcess};
    for (const std::string& name : choice_names(kProcessChoices)) sources.push_back(name);
    k.push_back(choice_key("init-process", branching,
                           "--init-from: every process from this process's state; own: each from its own",
                           &RunConfig::init_process, sources));
  }
  mark_fixed_on_branch(k, data, model);
  return k;
}

std::string normalized(std::string_view name) {
  std::string s(name);
  std::replace(s.begin(), s.end(), '_', '-');
  return s;
}

}  // namespace

// A TOML value as the text a flag would carry.
std::optional<std::string> toml_text(const toml::node& node) {
  if (const auto* s = node.as_string()) return s->get();
  if (const auto* i = node.as_integer()) return std::to_string(i->get());
  if (const auto* f = node.as_floating_point()) return format_real(f->get());
  if (const auto* b = node.as_boolean()) return b->get() ? "true" : "false";
  if (const auto* a = node.as_array()) {
    std::vector<std::string> items;
    for (const toml::node& item : *a) {
      if (item.is_array() || item.is_table()) return std::nullopt;
      const auto text = toml_text(item);
      if (!text) return std::nullopt;
      items.push_back(*text);
    }
    return join(items, ",");
  }
  return std::nullopt;
}

namespace {

std::string at_line(const toml::node& node) {
  const auto& where = node.source();
  return where.begin ? " (line " + std::to_string(where.begin.line) + ")" : "";
}

}  // namespace

// ---- RunConfig -----------------------------------------------------------------------------------

ClassChoice RunConfig::class_choice() const { return parse_class_choice(resolved_classes()); }

DataSpec RunConfig::data_spec() const {
  DataSpec spec;
  spec.name = data;
  spec.data_dir = data_dir;
  spec.n_train = static_cast<std::size_t>(n);
  if (n_test > 0) spec.n_test = static_cast<std::size_t>(n_test);
  if (n_test == 0) spec.n_test = static_cast<std::size_t>(class_choice().count);  // smallest set; not evaluated
  spec.classes = class_choice();
  spec.seed = seed;
  spec.noise = data_noise;
  spec.dim = data_dim;
  spec.vocab_size = vocab_size;
  spec.length = length;
  return spec;
}

ModelSpec RunConfig::model_spec(TensorShape input) const {
  ModelSpec spec = cflow::model_spec(
      {arch, act, loss, width, depth, !no_bias, class_choice().outputs(), heads, patch, output_scale}, input);
  if (const auto error = model_shape_error(spec)) throw ConfigError(*error);
  return spec;
}

OptimizerSpec RunConfig::optimizer_spec() const {
  OptimizerSpec spec;
  spec.kind = parse_optimizer(opt);
  spec.lr = lr;
  spec.beta2 = beta2;
  spec.eps = eps;
  spec.bias_correction = bias_correction;
  return spec;
}

std::vector<ProcessKind> RunConfig::processes() const {
  std::vector<ProcessKind> kinds;
  for (const std::string& name : runs) kinds.push_back(parse_process(name));
  return kinds;
}

RunConfig RunConfig::for_process(ProcessKind process) const {
  RunConfig scoped = *this;
  for (const char* base : kPerProcessEigenKeys) {
    const auto it = process_eig.find(to_string(process) + "-" + base);
    if (it != process_eig.end()) find_key(base)->set(scoped, it->second);
  }
  return scoped;
}

EigenSettings RunConfig::eigen_settings() const {
  EigenSettings e;
  e.frequency = eig_frequency;
  e.initial_k = eig_initial_k;
  e.track_threshold = eig_track_threshold;
  e.k_max = eig_max_k;
  e.tolerance = eig_tolerance();
  e.raw_eigenvalues = !no_raw_eigs;
  e.track_discrete = !no_track_discrete;
  return e;
}

ExperimentSettings RunConfig::experiment_settings() const {
  ExperimentSettings s;
  s.optimizer = optimizer_spec();
  s.processes = processes();
  s.warm_start = warm_start;
  s.eig = eigen_settings();
  for (ProcessKind kind : s.processes) s.process_eig.emplace_back(kind, for_process(kind).eigen_settings());
  s.flow.central_eig_every_substep = central_eig_every_substep;
  s.flow.central_nsubsteps = central_nsubsteps;
  s.flow.pair_group = central_pair_group;
  s.flow.sdcp_threshold = sdcp_threshold;
  s.flow.stable_min_nsubsteps = stable_min_nsubsteps;
  s.flow.stable_max_seff = stable_max_seff;
  s.flow.stationary = {stationary_tol, stationary_max_iterations, stationary_memory};
  s.seed = seed;
  s.solver_max_seconds = solver_max_seconds;
  return s;
}

// ---- keys ------------------------------------------------------------------------------------------

const std::vector<Key>& keys() {
  static const std::vector<Key> table = make_keys();
  return table;
}

std::string resumable_flags() {
  std::vector<std::string> flags;
  for (const Key& key : keys())
    if (key.on_resume) flags.push_back("--" + key.name);
  return join(flags, ", ");
}

const Key* find_key(std::string_view name) {
  const std::string wanted = normalized(name);
  for (const Key& key : keys())
    if (key.name == wanted) return &key;
  return nullptr;
}

void set_key(RunConfig& config, const Key& key, std::string_view text, std::string_view where) {
  try {
    key.set(config, text);
  } catch (const ConfigError& e) {
    throw ConfigError(std::string(where) + ": " + e.what());
  }
}

void apply_toml_text(RunConfig& config, std::string_view text, const std::string& source_name) {
  toml::table table;
  try {
    table = toml::parse(text, source_name);
  } catch (const toml::parse_error& e) {
    const auto& where = e.source().begin;
    throw ConfigError(source_name + ":" + std::to_string(where.line) +
                      ": not valid TOML: " + std::string(e.description()));
  }
  auto apply = [&](const std::string& name, const toml::node& value, const std::string& shown) {
    const Key* key = find_key(name);
    if (!key) {
      throw ConfigError(source_name + ": unknown key '" + shown + "'" + at_line(value) +
                        "; the keys are the flags of `cflow run --help` without the dashes");
    }
    const auto value_text = toml_text(value);
    const std::string where = source_name + ": " + shown + at_line(value);
    if (!value_text) throw ConfigError(where + ": expected a string, number, boolean or list of them");
    set_key(config, *key, *value_text, where);
  };
  // [eig] frequency = 1 is eig-frequency, [central.eig] frequency = 1 central-eig-frequency; [model]
  // width = 64 is width (a prefixed name that is a key wins over the bare one).
  std::function<void(const toml::table&, const std::string&, const std::string&)> walk =
      [&](const toml::table& section, const std::string& prefix, const std::string& shown_prefix) {
        for (const auto& [name, value] : section) {
          const std::string inner(name.str());
          const std::string shown = shown_prefix + inner;
          if (prefix.empty() && (normalized(inner) == "config" || normalized(inner) == "resume")) {
            throw ConfigError(source_name + ": '" + inner + "' is a command-line flag only" + at_line(value));
          }
          if (const toml::table* nested = value.as_table()) {
            walk(*nested, prefix + inner + "-", shown + ".");
          } else {
            const bool prefixed = prefix.empty() || find_key(prefix + inner) || !find_key(inner);
            apply(prefixed ? prefix + inner : inner, value, shown);
          }
        }
      };
  walk(table, "", "");
}

void apply_toml(RunConfig& config, const std::filesystem::path& file) {
  std::error_code ec;
  if (std::filesystem::is_directory(file, ec))
    throw ConfigError("--config " + file.string() + ": is a directory; expected a TOML file");
  std::ifstream in(file);
  if (!in) throw ConfigError("--config " + file.string() + ": cannot be read (check the path)");
  std::stringstream text;
  text << in.rdbuf();
  apply_toml_text(config, text.str(), file.string());
}

namespace {
void validate_sequence_task(const RunConfig& c) {
  if (const std::string why = sequence_task_mismatch(c.arch, c.data); !why.empty()) throw ConfigError(why);
  if (c.data == "sorting" && c.classes != "auto" && c.classes != std::to_string(c.vocab_size)) {
    throw ConfigError("--classes " + c.classes + ": the sorting task's classes are its " +
                      std::to_string(c.vocab_size) + " tokens (--vocab-size); leave --classes at auto");
  }
}
}  // namespace

void validate(const RunConfig& c) {
  const ClassChoice classes = c.class_choice();
  const bool images = c.data == "fashion-mnist" || c.data == "cifar10";
  const std::string shown = c.resolved_classes();
  const std::string classes_text = "the " + std::to_string(classes.count) + " classes (--classes " + shown + ")";
  if (images && classes.count > 10) {
    throw ConfigError("--classes " + shown + ": " + c.data +
                      " has 10 classes; expected an integer in [2, 10] or "
                      "'binary'");
  }
  if (c.data == "moons" && classes.count != 2) {
    throw ConfigError("--classes " + shown + ": moons has 2 classes; expected 2 or 'binary'");
  }
  if (c.data != "moons" && c.data != "sorting" && c.n % classes.count != 0) {
    throw ConfigError("--n " + std::to_string(c.n) + ": expected a multiple of " + classes_text);
  }
  if (c.log_outputs > c.n) {
    throw ConfigError("--log-outputs " + std::to_string(c.log_outputs) + ": there are only " + std::to_string(c.n) +
                      " training examples (--n " + std::to_string(c.n) + "); expected at most " +
                      std::to_string(c.n) + " (0: off)");
  }
  if (c.data != "moons" && c.data != "sorting" && c.n_test > 0 && c.n_test % classes.count != 0) {
    throw ConfigError("--n-test " + std::to_string(c.n_test) + ": expected a multiple of " + classes_text +
                      ", 0 or 'all'");
  }
  if (c.data == "cifar10" && c.data_dir.empty()) {
    throw ConfigError(
        "--data cifar10 needs --data-dir: the folder cifar-10-batches-bin (or its parent) unpacked "
        "from https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz");
  }
  validate_sequence_task(c);
  if (c.tf32 && !c.is_float32())
    throw ConfigError("--tf32: TF32 applies to float32 GEMMs and would change nothing with --dtype " + c.dtype +
                      "; drop --tf32 or use --dtype f32");
  if (c.arch != "mlp" && c.arch != "transformer" && !images) {
    throw ConfigError("--arch " + c.arch + ": expected image data (--data fashion-mnist or cifar10), got --data " +
                      c.data);
  }
  if (c.runs.empty() || (c.runs.size() == 1 && c.runs[0].empty())) {
    throw ConfigError("--runs: expected at least one of " + joined_choice_names(kProcessChoices, ", "));
  }
  if (std::find(c.runs.begin(), c.runs.end(), to_string(ProcessKind::stationary)) != c.runs.end() &&
      c.opt != to_string(OptimizerKind::rmsprop)) {
    throw ConfigError("--runs stationary: the stationary flow holds RMSProp's per-coordinate nu at E[g*g], so it "
                      "needs --opt rmsprop (got --opt " + c.opt + "); drop stationary from --runs or "
                      "use --opt rmsprop");
  }
  for (const auto& [name, kind] : kProcessChoices) {
    const int initial_k = c.for_process(kind).eig_initial_k;
    if (initial_k > c.eig_max_k) {
      const std::string flag = c.process_eig.count(std::string(name) + "-eig-initial-k")
                                   ? "--" + std::string(name) + "-eig-initial-k"
                                   : "--eig-initial-k";
      throw ConfigError(flag + " " + std::to_string(initial_k) + ": expected at most --eig-max-k (" +
                        std::to_string(c.eig_max_k) + ")");
    }
  }
}

nlohmann::ordered_json to_json(const RunConfig& config) {
  nlohmann::ordered_json settings = nlohmann::ordered_json::object();
  for (const Key& key : keys()) settings[key.name] = key.get(config);
  return settings;
}

RunConfig from_json(const nlohmann::ordered_json& settings, const std::string& source_name) {
  if (!settings.is_object()) throw ConfigError(source_name + ": 'settings' is not an object");
  RunConfig config;
  for (const auto& [name, value] : settings.items()) {
    const Key* key = find_key(name);
    if (!key) throw ConfigError(source_name + ": unknown setting '" + name + "' (written by another cflow version?)");
    std::string text;
    if (value.is_string()) {
      text = value.get<std::string>();
    } else if (value.is_boolean()) {
      text = value.get<bool>() ? "true" : "false";
    } else if (value.is_number_unsigned()) {
      text = std::to_string(value.get<std::uint64_t>());
    } else if (value.is_number_integer()) {
      text = std::to_string(value.get<std::int64_t>());
    } else if (value.is_number_float()) {
      text = format_real(value.get<double>());
    } else if (value.is_array()) {
      std::vector<std::string> items;
      for (const auto& item : value) items.push_back(item.is_string() ? item.get<std::string>() : item.dump());
      text = join(items, ",");
    } else {
      throw ConfigError(source_name + ": setting '" + name + "' has an unexpected type");
    }
    set_key(config, *key, text, source_name + ": " + name);
  }
  return config;
}

// ---- the command line -------------------------------------------------------------------------------

void register_flags(CLI::App& cmd, RunFlags& flags) {
  const RunConfig defaults;
  for (const Key& key : keys()) {
    const nlohmann::ordered_json value = key.get(defaults);
    std::string shown = value.is_string()         ? value.get<std::string>()
                        : value.is_number_float() ? format_real(value.get<double>())
                                                  : value.dump();
    if (value.is_array()) shown = join(value.get<std::vector<std::string>>(), ",");
    if (key.name == "out") shown = "runs/<timestamp>-<id>";
    if (key.name == "data-dir") shown = "per data set";
    if (key.name == "profile-steps") shown = "off";
    CLI::Option* option = nullptr;
    if (key.is_switch()) {
      option = cmd.add_flag("--" + key.name, flags.switches[key.name],
                            key.help + (shown == "true" ? " (default: on)" : " (default: off)"));
    } else {
      option = cmd.add_option("--" + key.name, flags.values[key.name], key.help + " (default: " + shown + ")")
                   ->type_name(key.value_name);
    }
    option->group(key.group);
    flags.options[key.name] = option;
  }
  cmd.add_option("--config", flags.config_file,
                 "TOML file of settings: the flags' names as keys (lr = 0.05, runs = [\"discrete\", \"central\"]), "
                 "at the top or in tables ([eig] frequency = 1); flags override it")
      ->type_name("FILE")
      ->group("Run");
  cmd.add_option("--resume", flags.resume_dir,
                 "continue RUNDIR from its last checkpoint with its config.json (may change " +
                     resumable_flags() + ")")
      ->type_name("RUNDIR")
      ->group("Run");
  cmd.add_option("--plan-memory", flags.plan_memory_gib,
                 "print the memory estimate of this run and the largest --width that fits GIB GiB at its k, "
                 "precision and --central-pair-group, then exit 0 without running (docs/design.md §7)")
      ->type_name("GIB")
      ->check(CLI::PositiveNumber)
      ->group("Run");
  cmd.add_option("--test-crash-after", flags.crash_after, "for tests: exit abruptly after N steps")->group("");
}

std::vector<std::pair<const Key*, std::string>> given_flags(const RunFlags& flags) {
  std::vector<std::pair<const Key*, std::string>> given;
  for (const Key& key : keys()) {
    const CLI::Option* option = flags.options.at(key.name);
    if (option->count() == 0) continue;
    given.emplace_back(&key,
                       key.is_switch() ? (flags.switches.at(key.name) ? "true" : "false") : flags.values.at(key.name));
  }
  return given;
}

RunConfig resolve(const RunFlags& flags) {
  RunConfig config;
  if (!flags.config_file.empty()) apply_toml(config, flags.config_file);
  for (const auto& [key, text] : given_flags(flags)) set_key(config, *key, text, "--" + key->name);
  config.classes = config.resolved_classes();
  validate(config);
  return config;
}

}  // namespace cflow::run
