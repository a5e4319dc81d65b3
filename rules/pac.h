// generatePac(): a proxy auto-config file (the `FindProxyForURL(url, host)`
// JavaScript that browsers and other PAC clients fetch from /proxy.pac) that
// gives, for every plain request, the answer switchyard's own decide() would
// act on:
//
//   1. the explicit rules, in config order, that match on `hosts:` alone
//      (a rule with `modules:` needs a module path, which a browser never
//      shows, so it is left out, exactly as decide() never matches it for a
//      plain request): `direct` -> "DIRECT"; `upstream`, `mirror` and `deny`
//      -> "PROXY <us>", so that switchyard applies them (and refuses denied
//      hosts with a readable 403 instead of the browser going around it);
//   2. Go's NO_PROXY, read as rules/host_match.h reads it: the loopback
//      short-cut, then every entry class -> "DIRECT";
//   3. everything else -> "PROXY <us>": the proxy itself then picks the parent
//      (HTTPS_PROXY / HTTP_PROXY) or goes direct.
//
// The host lists are emitted as JSON data tables built from
// parseNoProxyEntries() (already IDNA-converted, lowercased and classified),
// with one small matcher in JavaScript. The script is self-contained: it never
// calls isInNet(), dnsResolve(), myIpAddress() or shExpMatch(), so it never
// waits on DNS; IP ranges only match hosts written as IP literals, which is
// also all that Go's NO_PROXY does.
//
// Limits, by design: hosts arrive from browsers already in punycode, so the
// script does not convert Unicode hosts itself (switchyard does, for the
// requests it sees); and a `direct` rule answers "DIRECT" even with
// `intercept:` or `cache:` set, since the browser cannot use either anyway.
#pragma once

#include <string>

#include "rules/snapshot.h"

namespace switchyard::rules {

// `proxy_host_port` is what the browser should connect to, "host:port" or
// "[v6]:port", e.g. "gateway.example.com:3128".
std::string generatePac(const ConfigSnapshot& snap, const std::string& proxy_host_port);

}  // namespace switchyard::rules
