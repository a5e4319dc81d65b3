// The startup check of interception, apart from intercept.h so that the
// command-line code can use it without the fetch and TLS headers.
#pragma once

#include <string>

#include "rules/config.h"

namespace switchyard {

// At startup: when tls.ca_dir is set and some rule intercepts, the CA must
// load, so that a broken CA stops the daemon instead of every intercepted
// tunnel. False with *error naming the directory.
bool checkInterceptCa(const rules::Config& config, std::string* error);

}  // namespace switchyard
