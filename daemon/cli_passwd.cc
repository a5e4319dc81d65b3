// Placeholder until the subcommand is written: it says so plainly.
#include <cstdio>

#include "daemon/cli.h"

namespace switchyard {

int runPasswd(const PasswdOptions&) {
  std::fprintf(stderr, "passwd: not implemented yet\n");
  return 2;
}

}  // namespace switchyard
