// Evaluates a proxy auto-config file the way a browser does, for a list of
// URLs, and prints the answers as one JSON array.
//
//   node pac_eval.js FILE.pac URLS.json
//
// URLS.json is an array of URLs. The host handed to FindProxyForURL() is the
// URL's host as written (userinfo and port removed); for an IPv6 literal the
// script is called twice, with and without the brackets, since engines
// differ, and both answers are printed: {"url", "host", "answer",
// "bracketed"}.
//
// The PAC runs in an empty context: none of the PAC helper functions
// (isInNet, dnsResolve, myIpAddress, shExpMatch, ...) exist, so a script that
// relied on one would fail with a ReferenceError, and would be caught here.
"use strict";

const fs = require("fs");
const vm = require("vm");

function hostOf(url) {
  const s = url.indexOf("://");
  let rest = s < 0 ? url : url.substring(s + 3);
  const end = rest.search(/[/?#]/);
  let auth = end < 0 ? rest : rest.substring(0, end);
  const at = auth.lastIndexOf("@");
  if (at >= 0) {
    auth = auth.substring(at + 1);
  }
  if (auth.startsWith("[")) {
    const close = auth.indexOf("]");
    return { host: auth.substring(1, close), v6: true };
  }
  const colon = auth.lastIndexOf(":");
  return { host: colon >= 0 ? auth.substring(0, colon) : auth, v6: false };
}

function main() {
  if (process.argv.length !== 4) {
    process.stderr.write("usage: node pac_eval.js FILE.pac URLS.json\n");
    process.exit(2);
  }
  const pac = fs.readFileSync(process.argv[2], "utf8");
  const urls = JSON.parse(fs.readFileSync(process.argv[3], "utf8"));
  const context = vm.createContext({});
  vm.runInContext(pac, context, { filename: process.argv[2], timeout: 5000 });
  if (typeof context.FindProxyForURL !== "function") {
    throw new Error("the PAC defines no FindProxyForURL function");
  }
  const out = [];
  for (const url of urls) {
    const { host, v6 } = hostOf(url);
    out.push({ url, host, answer: context.FindProxyForURL(url, host), bracketed: false });
    if (v6) {
      const bracketed = "[" + host + "]";
      out.push({ url, host: bracketed, answer: context.FindProxyForURL(url, bracketed),
                 bracketed: true });
    }
  }
  process.stdout.write(JSON.stringify(out) + "\n");
}

main();
