// host/run/plan.h: the resume rules, without a process or a run directory.
#include <gtest/gtest.h>

#include <string>

#include "host/run/plan.h"

namespace cflow::run {
namespace {

GivenSettings given(std::initializer_list<std::pair<const char*, const char*>> flags) {
  GivenSettings out;
  for (const auto& [name, value] : flags) out.emplace_back(find_key(name), value);
  return out;
}

nlohmann::ordered_json settings_of(const RunConfig& config) { return to_json(config); }

std::string message_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}

TEST(RunPlan, ResumeMayChangeOnlyTheResumableKeys) {
  const RunConfig stored;
  const RunConfig resumed = resumed_config(settings_of(stored), given({{"steps", "400"}, {"threads", "2"}}), "c");
  EXPECT_EQ(resumed.steps, 400);
  EXPECT_EQ(resumed.threads, 2);
  EXPECT_EQ(resumed.lr, stored.lr);
  EXPECT_NE(message_of([&] { resumed_config(settings_of(stored), given({{"lr", "0.06"}}), "c"); })
                .find("--lr cannot change when resuming"),
            std::string::npos);
  EXPECT_NO_THROW(resumed_config(settings_of(stored), given({{"lr", "0.05"}}), "c"));  // the same value
  EXPECT_NE(message_of([&] { resumed_config(settings_of(stored), given({{"out", "elsewhere"}}), "c"); })
                .find("--out cannot be combined with --resume"),
            std::string::npos);
}

CheckpointFile checkpoint_of(const RunConfig& config, std::int64_t step) {
  CheckpointFile file;
  file.checkpoint.step = step;
  file.meta = checkpoint_identity(config);
  file.file = "checkpoints/step-000000010.ckpt";
  return file;
}

TEST(RunPlan, AnEditedSettingIsRefusedNamingTheKeyAndBothValues) {
  RunConfig config;
  const CheckpointFile checkpoint = checkpoint_of(config, 10);
  EXPECT_NO_THROW(check_continues(config, checkpoint));
  config.steps = 500;  // resumable: not part of the identity
  config.quiet = true;
  EXPECT_NO_THROW(check_continues(config, checkpoint));
  config.lr = 0.06;
  config.width = 64;
  const std::string message = message_of([&] { check_continues(config, checkpoint); });
  EXPECT_NE(message.find("lr is 0.06 in config.json but 0.05 in the checkpoint"), std::string::npos) << message;
  EXPECT_NE(message.find("width is 64 in config.json but 128 in the checkpoint"), std::string::npos) << message;
  EXPECT_NE(message.find("step-000000010.ckpt"), std::string::npos) << message;
}

// A data-parallel run resumes only on as many ranks as it started with; a checkpoint without
// "ranks" is a single process's (docs/design.md §7).
TEST(RunPlan, AnotherRankCountIsRefusedNamingBoth) {
  CheckpointFile checkpoint = checkpoint_of(RunConfig{}, 10);
  checkpoint.meta["ranks"] = 2;
  EXPECT_NO_THROW(check_ranks("runs/x", checkpoint, 2));
  const std::string message = message_of([&] { check_ranks("runs/x", checkpoint, 3); });
  EXPECT_NE(message.find("started with 2 rank(s) and resumes only with as many (mpirun -np 2), not 3"),
            std::string::npos)
      << message;
  checkpoint.meta.erase("ranks");
  EXPECT_NO_THROW(check_ranks("runs/x", checkpoint, 1));
  EXPECT_THROW(check_ranks("runs/x", checkpoint, 2), ConfigError);
}

TEST(RunPlan, StepsBelowTheCheckpointAreRefusedAndOldCheckpointsWithoutDigestAccepted) {
  RunConfig config;
  CheckpointFile checkpoint = checkpoint_of(config, 10);
  config.steps = 9;
  EXPECT_NE(message_of([&] { check_continues(config, checkpoint); }).find("--steps 9"), std::string::npos);
  config.steps = 10;
  config.lr = 0.07;
  checkpoint.meta = nlohmann::json::object();  // written before digests existed
  EXPECT_NO_THROW(check_continues(config, checkpoint));
}

// A checkpoint written before a setting existed continues while that setting is at its default.
TEST(RunPlan, SettingsAddedSinceTheCheckpointContinueAtTheirDefaults) {
  RunConfig config;
  CheckpointFile checkpoint = checkpoint_of(config, 10);
  checkpoint.meta["settings"].erase("central-eig-frequency");
  checkpoint.meta["settings_digest"] = "0000000000000000";
  EXPECT_NO_THROW(check_continues(config, checkpoint));
  config.process_eig["central-eig-frequency"] = "2";
  const std::string message = message_of([&] { check_continues(config, checkpoint); });
  EXPECT_NE(message.find("central-eig-frequency is 2 in config.json but \"global\" in the checkpoint"),
            std::string::npos)
      << message;
}

// A branch keeps the origin's data, model, seed, optimizer kind and warm start; everything else
// (the learning rate here) may change. Its processes need their source in the checkpoint.
TEST(RunPlan, ABranchRefusesOtherFixedSettingsNamingEachAndNeedsItsSourceProcesses) {
  RunConfig origin_config;
  origin_config.runs = {"discrete", "central"};
  Origin origin{"runs/origin", checkpoint_of(origin_config, 10), std::nullopt};
  for (const char* process : {"discrete", "central"})
    for (const char* array : {"/w", "/stopped"})
      origin.checkpoint.checkpoint.arrays.emplace_back(std::string(process) + array, std::vector<double>{0});
  RunConfig config = origin_config;
  config.steps = 20;
  config.lr = 0.07;
  EXPECT_NO_THROW(check_branches(config, origin));
  config.width = 64;
  config.seed = 3;
  std::string message = message_of([&] { check_branches(config, origin); });
  EXPECT_NE(message.find("width is 64 here but 128 in the origin"), std::string::npos) << message;
  EXPECT_NE(message.find("seed is 3 here but 0 in the origin"), std::string::npos) << message;
  EXPECT_EQ(message.find("lr is"), std::string::npos) << message;
  config = origin_config;
  config.steps = 20;
  config.runs = {"stable"};
  message = message_of([&] { check_branches(config, origin); });
  EXPECT_NE(message.find("the origin has no stable process (it ran central, discrete)"), std::string::npos) << message;
  origin.process = ProcessKind::central;  // --init-process central
  EXPECT_NO_THROW(check_branches(config, origin));
  origin.checkpoint.checkpoint.arrays.back().second = {1};  // central stopped
  message = message_of([&] { check_branches(config, origin); });
  EXPECT_NE(message.find("the origin's central process had stopped"), std::string::npos) << message;
}

}  // namespace
}  // namespace cflow::run
