// ConfigSnapshot: a loaded Config compiled for matching (host indexes,
// pattern indexes, parsed GOPROXY lists). Immutable once built and shared by
// every connection that started under it; SIGHUP builds a new one.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "rules/config.h"

namespace switchyard::rules {

class ConfigSnapshot;
using ConfigSnapshotPtr = std::shared_ptr<const ConfigSnapshot>;

class ConfigSnapshot {
 public:
  // Compiles `config`. Problems found while compiling (e.g. a GOPROXY list
  // with no entries) are appended to *errors as "file:line:col: message";
  // returns nullptr if there were any.
  static ConfigSnapshotPtr build(Config config, uint64_t generation,
                                 std::vector<std::string>* errors);
  ~ConfigSnapshot();

  const Config& config() const { return config_; }
  uint64_t generation() const { return generation_; }

  struct Compiled;  // matcher indexes; defined in snapshot.cc
  const Compiled& compiled() const { return *compiled_; }

 private:
  ConfigSnapshot() = default;
  Config config_;
  uint64_t generation_ = 0;
  std::unique_ptr<Compiled> compiled_;
};

}  // namespace switchyard::rules
