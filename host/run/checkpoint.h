#pragma once
// Checkpoint files of `cflow run`: what Experiment::checkpoint() returns (named host arrays of
// doubles at a step), plus a JSON metadata object, in <run>/checkpoints/step-<step>.ckpt.
//
// File format (version 1; all integers little-endian):
//   bytes 0..7     magic "CFLOWCK1"
//   u64            length H of the header
//   H bytes        header, UTF-8 JSON: {"format": 1, "step": S, "meta": {...}, "notes": {name: text},
//                                        "arrays": [{"name": "...", "length": N}, ...]}
//   for each array of the header, in order: N float64 values (IEEE 754, little-endian)
//   u64            checksum: FNV-1a (64-bit) of every byte before it
// A file whose size, magic, header or checksum is wrong is rejected with a message naming the file
// and the problem. Doubles hold float32 values exactly, so one format serves both precisions.
//
// Writing is atomic: the bytes go to a temporary file in the same folder, which is fsync'ed and then
// renamed over the final name (and the folder fsync'ed), so a crash leaves either the old set of
// checkpoints or the new one, never a partial file under a checkpoint's name. The newest `keep`
// checkpoints and those at `pinned` steps (--checkpoint-steps) are kept; other older ones are
// deleted after the new one is in place.
#include <nlohmann/json.hpp>

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "cflow/flow/experiment.h"

namespace cflow::run {

inline constexpr const char* kCheckpointFolder = "checkpoints";

struct CheckpointFile {
  Checkpoint checkpoint;
  nlohmann::json meta;
  std::filesystem::path file;
};

// The file name of the checkpoint at `step` inside `folder`.
std::filesystem::path checkpoint_path(const std::filesystem::path& folder, std::int64_t step);

// Writes `checkpoint` atomically into `folder` (created if missing) and deletes all but the newest
// `keep` checkpoints and the `pinned` steps. Returns the file written. Throws cflow::Error naming
// the file on failure.
std::filesystem::path write_checkpoint(const std::filesystem::path& folder, const Checkpoint& checkpoint,
                                       const nlohmann::json& meta, int keep = 2,
                                       const std::vector<std::int64_t>& pinned = {});

// Reads and verifies one checkpoint file; throws cflow::Error naming the file and what is wrong.
CheckpointFile read_checkpoint(const std::filesystem::path& file);

// The newest checkpoint in `folder` that reads back intact; the reasons for skipping newer, damaged
// ones go to `skipped`. nullopt when there is none.
std::optional<CheckpointFile> latest_checkpoint(const std::filesystem::path& folder,
                                                std::vector<std::string>* skipped = nullptr);
// The same among the checkpoints at steps up to `step` (branching from a run at a step).
std::optional<CheckpointFile> checkpoint_at_or_before(const std::filesystem::path& folder, std::int64_t step,
                                                      std::vector<std::string>* skipped = nullptr);

// Writes `text` to `file` atomically (a temporary file beside it, fsync, rename); for config.json and
// summary.json. Throws cflow::Error naming the file.
void write_text_atomically(const std::filesystem::path& file, std::string_view text);

// FNV-1a (64-bit) of `bytes`, the checksum of the file format above.
std::uint64_t fnv1a(std::string_view bytes);

// The checkpoint files in `folder`, oldest first.
std::vector<std::filesystem::path> list_checkpoints(const std::filesystem::path& folder);
// The step of a checkpoint file named by checkpoint_path(), or nullopt for another name.
std::optional<std::int64_t> checkpoint_step(const std::filesystem::path& file);

}  // namespace cflow::run
