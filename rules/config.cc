#include "rules/config.h"

namespace switchyard::rules {

std::string SourcePos::str() const {
  if (!file.empty()) {
    return file + ":" + std::to_string(line);
  }
  if (!env.empty()) {
    return "env:" + env;
  }
  return "builtin";
}

const char* actionName(Action action) {
  switch (action) {
    case Action::kDirect:
      return "direct";
    case Action::kUpstream:
      return "upstream";
    case Action::kMirror:
      return "mirror";
    case Action::kDeny:
      return "deny";
  }
  return "?";
}

}  // namespace switchyard::rules
