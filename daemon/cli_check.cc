// Placeholder until the subcommand is written: it says so plainly.
#include <cstdio>

#include "daemon/cli.h"

namespace switchyard {

int runCheck(const std::string&) {
  std::fprintf(stderr, "check: not implemented yet\n");
  return 2;
}

}  // namespace switchyard
