#include "rules/version.h"

namespace switchyard::rules {

const char* version() {
  return "0.1.0";
}

}  // namespace switchyard::rules
