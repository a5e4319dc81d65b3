#include "rules/decision.h"
#include "rules/snapshot.h"

namespace switchyard::rules {

// TODO(lead): the real decision engine. Until then everything goes direct.
Decision decide(const RequestFacts&, const ConfigSnapshot& snapshot) {
  Decision d;
  d.action = Action::kDirect;
  d.rule = "default";
  d.config_gen = snapshot.generation();
  return d;
}

}  // namespace switchyard::rules
