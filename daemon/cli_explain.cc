// Placeholder until the subcommand is written: it says so plainly.
#include <cstdio>

#include "daemon/cli.h"

namespace switchyard {

int runExplain(const ExplainOptions&) {
  std::fprintf(stderr, "explain: not implemented yet\n");
  return 2;
}

}  // namespace switchyard
