#include "rules/snapshot.h"

namespace switchyard::rules {

// TODO(lead): host and module indexes; filled in with decide().
struct ConfigSnapshot::Compiled {};

ConfigSnapshotPtr ConfigSnapshot::build(Config config, uint64_t generation,
                                        std::vector<std::string>*) {
  std::shared_ptr<ConfigSnapshot> snap(new ConfigSnapshot());
  snap->config_ = std::move(config);
  snap->generation_ = generation;
  snap->compiled_ = std::make_unique<Compiled>();
  return snap;
}

ConfigSnapshot::~ConfigSnapshot() = default;

}  // namespace switchyard::rules
