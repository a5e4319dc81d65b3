// Placeholder until the subcommand is written: it says so plainly.
#include <cstdio>

#include "daemon/cli.h"

namespace switchyard {

int runCaInit(const CaInitOptions&) {
  std::fprintf(stderr, "ca init: not implemented yet\n");
  return 2;
}

}  // namespace switchyard
