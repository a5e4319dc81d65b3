// Placeholder until the subcommand is written: it says so plainly.
#include <cstdio>

#include "daemon/cli.h"

namespace switchyard {

int runImportEnv() {
  std::fprintf(stderr, "import-env: not implemented yet\n");
  return 2;
}

}  // namespace switchyard
