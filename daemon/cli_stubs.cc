// Subcommands not written yet: each answers plainly instead of pretending.
#include <cstdio>

#include "daemon/cli.h"

namespace switchyard {

int runCheck(const std::string&) {
  std::fprintf(stderr, "check: not implemented yet\n");
  return 2;
}
int runExplain(const ExplainOptions&) {
  std::fprintf(stderr, "explain: not implemented yet\n");
  return 2;
}
int runImportEnv() {
  std::fprintf(stderr, "import-env: not implemented yet\n");
  return 2;
}
int runCaInit(const CaInitOptions&) {
  std::fprintf(stderr, "ca init: not implemented yet\n");
  return 2;
}

}  // namespace switchyard
