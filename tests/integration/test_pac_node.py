"""The /proxy.pac file, evaluated by a real JavaScript engine (node), agrees
with switchyard's own decision for every URL of a table that covers each
NO_PROXY class, IPv6 literals, ports, the loopback short-cut, and explicit
rules in order (deny included).

The PAC comes from tests/tools/pac_dump (the same rules::generatePac() the
admin listener serves). Each URL's answer is compared with
  * a hand-written expectation, and
  * `explain --json` (switchyard's, when the subcommand is available, and
    pac_dump's --explain, which calls the same rules::explain()):
    action "direct" by NO_PROXY or by an explicit rule -> DIRECT,
    everything else (upstream, mirror, deny, or direct only because no parent
    proxy is set) -> PROXY, since the browser must then come to us.
"""
import json
import os
import shutil
import subprocess
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
BIN = os.environ.get("SWITCHYARD_BIN", "")
PROXY = "gateway.test:3128"
DIRECT = "DIRECT"
PROXIED = "PROXY " + PROXY


def find_pac_dump():
    explicit = os.environ.get("PAC_DUMP", "")
    if explicit:
        return explicit if os.access(explicit, os.X_OK) else None
    build = os.environ.get("SY_BUILD_DIR", "")
    for rel in ("tests/pac_dump", "tests/tools/pac_dump", "pac_dump"):
        path = os.path.join(build, rel)
        if build and os.access(path, os.X_OK):
            return path
    return None


PAC_DUMP = find_pac_dump()
NODE = shutil.which("node")

# Every NO_PROXY class of SEMANTICS.md A.2, each with entries that match and
# entries that must not.
CONFIG_MAIN = """\
inherit_env: false
env:
  HTTPS_PROXY: "http://parent.test:8080"
  HTTP_PROXY: "http://parent.test:8080"
  NO_PROXY: " .corp.example.com, *.wild.example,example.org,exact.test:8080,port80.test:80,\
port443.test:443,zero.test:08080,10.0.0.0/8,2001:db8:aaaa::/48,1.2.3.4,2001:db8:1:0:0:0:0:7,\
[2001:db8:2::9]:8443,198.51.100.7:8080,2.1,fqdn.test.,trail.test,[2001:db8:3::1],bücher.example,\
172.16.0.0/12,fe80::/10,:9999,,10.1.2.3/8:80,UPPER.Example.NET"
tls: { ca_dir: "/nonexistent/switchyard-ca" }
rules:
  - name: good-tracker
    match: { hosts: "good.tracker.test" }
    action: direct
  - name: no-trackers
    match: { hosts: ".tracker.test,.doubleclick.net" }
    action: deny
  - name: ads-exception-too-late
    match: { hosts: "ok.doubleclick.net" }
    action: direct
  - name: corp-parent
    match: { hosts: "upstream.corp.example.com" }
    action: upstream
    upstream: "http://user:secret@corp-parent.test:3128"
  - name: intranet
    match: { hosts: "intranet.test,192.168.0.0/16,[fd00::1]:8443" }
    action: direct
  - name: not-loopback-127-0-0-2
    match: { hosts: "127.0.0.2" }
    action: deny
  - name: golang-mirror
    match: { hosts: "proxy.golang.org" }
    action: mirror
    mirrors: "https://goproxy.io,direct"
    intercept: true
  - name: both-needs-module
    match: { hosts: "both.test", modules: "both.test/*" }
    action: direct
  - name: module-only
    match: { modules: "git.company.com" }
    action: direct
  - name: intranet-shadowed
    match: { hosts: "intranet.test" }
    action: deny
"""

# (url, expected answer)
CASES_MAIN = [
    # Loopback short-cut: exact lowercase "localhost", 127/8, ::1, mapped.
    ("http://localhost/", DIRECT),
    ("http://localhost:8080/x", DIRECT),
    ("http://LOCALHOST/", PROXIED),
    ("http://localhost./", PROXIED),
    ("http://foo.localhost/", PROXIED),
    ("http://127.0.0.1:8080/", DIRECT),
    ("https://127.1.2.3/", DIRECT),
    ("http://[::1]/", DIRECT),
    ("https://[::1]:8443/", DIRECT),
    ("http://[::ffff:127.0.0.1]/", DIRECT),
    # A rule comes before the loopback short-cut.
    ("http://127.0.0.2/", PROXIED),
    ("http://127.0.0.3/", DIRECT),
    # Leading dot and "*.": strict subdomains only; case-insensitive.
    ("https://www.corp.example.com/", DIRECT),
    ("https://a.b.corp.example.com/p?q", DIRECT),
    ("https://Www.Corp.Example.COM/", DIRECT),
    ("https://corp.example.com/", PROXIED),
    ("https://x.wild.example/", DIRECT),
    ("https://wild.example/", PROXIED),
    ("http://user:pw@www.corp.example.com:8080/", DIRECT),
    # An upstream rule beats the NO_PROXY entry that would also match.
    ("https://upstream.corp.example.com/", PROXIED),
    # Bare names: the host and its subdomains.
    ("https://example.org/", DIRECT),
    ("https://www.example.org/", DIRECT),
    ("https://notexample.org/", PROXIED),
    ("https://upper.example.net/", DIRECT),
    # Ports against the effective port of the scheme.
    ("http://exact.test:8080/", DIRECT),
    ("https://exact.test:8080/", DIRECT),
    ("http://sub.exact.test:8080/", DIRECT),
    ("http://exact.test/", PROXIED),
    ("http://port80.test/", DIRECT),
    ("https://port80.test/", PROXIED),
    ("https://port443.test/", DIRECT),
    ("http://port443.test/", PROXIED),
    ("http://zero.test:8080/", PROXIED),
    ("http://anything.test:9999/", PROXIED),
    # CIDRs, on IP literals only, IPv4-mapped included.
    ("http://10.1.2.3/", DIRECT),
    ("http://10.255.0.1:8080/", DIRECT),
    ("http://[::ffff:10.1.2.3]/", DIRECT),
    ("http://[::ffff:a01:203]/", DIRECT),
    ("http://11.0.0.1/", PROXIED),
    ("http://172.16.5.5/", DIRECT),
    ("http://172.32.0.1/", PROXIED),
    ("http://[2001:db8:aaaa::5]/", DIRECT),
    ("http://[2001:db8:aaab::5]/", PROXIED),
    ("http://[fe80::1%25eth0]/", DIRECT),
    ("http://010.1.2.3/", PROXIED),
    # Exact IPs, numerically; with a port.
    ("http://1.2.3.4/", DIRECT),
    ("http://[::ffff:1.2.3.4]/", DIRECT),
    ("http://[2001:DB8:1::7]/", DIRECT),
    ("https://[2001:db8:2::9]:8443/", DIRECT),
    ("https://[2001:db8:2::9]/", PROXIED),
    ("http://198.51.100.7:8080/", DIRECT),
    ("http://198.51.100.7/", PROXIED),
    # An IP host is never compared with name entries ("2.1").
    ("http://4.3.2.1/", PROXIED),
    ("http://x.2.1/", DIRECT),
    # Trailing dots are significant on both sides.
    ("http://fqdn.test./", DIRECT),
    ("http://www.fqdn.test./", DIRECT),
    ("http://fqdn.test/", PROXIED),
    ("http://trail.test./", PROXIED),
    ("http://trail.test/", DIRECT),
    # A bracketed IPv6 entry without a port never matches.
    ("http://[2001:db8:3::1]/", PROXIED),
    # IDN entries are compared in their IDNA ASCII form.
    ("http://xn--bcher-kva.example/", DIRECT),
    ("http://www.xn--bcher-kva.example/", DIRECT),
    # Rules in order, deny, shadowed rules, rules that need a module.
    ("https://good.tracker.test/", DIRECT),
    ("https://bad.tracker.test/", PROXIED),
    ("https://www.doubleclick.net/", PROXIED),
    ("https://ok.doubleclick.net/", PROXIED),
    ("http://intranet.test/", DIRECT),
    ("http://www.intranet.test/", DIRECT),
    ("http://192.168.1.1/", DIRECT),
    ("https://[fd00::1]:8443/", DIRECT),
    ("https://[fd00::1]/", PROXIED),
    ("https://proxy.golang.org/", PROXIED),
    ("http://both.test/", PROXIED),
    ("https://git.company.com/", PROXIED),
    # Names that are also JavaScript object properties.
    ("http://constructor/", PROXIED),
    ("http://__proto__/", PROXIED),
    ("http://hasownproperty.example/", PROXIED),
    ("http://127.0.0.1.nip.io/", PROXIED),
]

# "*" anywhere in the list bypasses everything; rules still come first.
CONFIG_STAR = """\
inherit_env: false
env:
  HTTPS_PROXY: "http://parent.test:8080"
  NO_PROXY: "a.test,*"
rules:
  - name: deny-one
    match: { hosts: "denied.test" }
    action: deny
"""
CASES_STAR = [
    ("https://example.com/", DIRECT),
    ("http://10.0.0.1/", DIRECT),
    ("https://[2001:db8::1]/", DIRECT),
    ("https://denied.test/", PROXIED),
    ("https://sub.denied.test/", PROXIED),
]

# No parent proxy: decide() says "direct (default)", but the browser must
# still come to us. The lone "." entry matches only FQDNs with the dot.
# "::/8" is an IPv6 range whose prefix every IPv4-mapped address shares.
CONFIG_NOPARENT = """\
inherit_env: false
env:
  NO_PROXY: ".,[::1]:80,::/8"
rules: []
"""
CASES_NOPARENT = [
    ("https://example.com/", PROXIED),
    ("https://example.com./", DIRECT),
    ("http://10.0.0.1/", PROXIED),
    # An IPv6 range never contains IPv4 (or IPv4-mapped) hosts, even when
    # their 16-byte forms share the prefix.
    ("http://[::ffff:10.0.0.1]/", PROXIED),
    ("http://[::2]/", DIRECT),
    ("http://[100::1]/", PROXIED),
    ("http://localhost/", DIRECT),
    ("http://[::1]/", DIRECT),
]


def pac_answer_from_explain(j):
    """What a browser should do for an explain --json object."""
    if j["action"] == "direct" and j["rule"] != "default":
        return DIRECT
    return PROXIED


@unittest.skipUnless(NODE, "node is not installed")
@unittest.skipUnless(PAC_DUMP, "tests/tools/pac_dump is not built (see tests/CMakeLists.txt)")
class PacAgreesWithExplain(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="sy-pac-")
        self.addCleanup(self.tmp.cleanup)

    def write(self, name, text):
        path = os.path.join(self.tmp.name, name)
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        return path

    def run_tool(self, args):
        env = {k: v for k, v in os.environ.items()
               if k.lower() not in ("http_proxy", "https_proxy", "no_proxy")
               and not k.startswith("GO")}
        return subprocess.run(args, capture_output=True, text=True, env=env, timeout=120)

    def pac_answers(self, config_path, urls):
        pac = self.run_tool([PAC_DUMP, "--config", config_path, "--proxy", PROXY])
        self.assertEqual(pac.returncode, 0, pac.stderr)
        for forbidden in ("isInNet", "dnsResolve", "myIpAddress", "isResolvable"):
            self.assertNotIn(forbidden, pac.stdout)
        pac_path = self.write("proxy.pac", pac.stdout)
        urls_path = self.write("urls.json", json.dumps(urls))
        out = self.run_tool([NODE, os.path.join(HERE, "pac_eval.js"), pac_path, urls_path])
        self.assertEqual(out.returncode, 0, out.stderr)
        answers = {}
        for row in json.loads(out.stdout):
            answers.setdefault(row["url"], []).append(row)
        return answers

    def explain_answers(self, config_path, urls):
        """explain --json for each URL: pac_dump's always, switchyard's when
        its explain subcommand is implemented (they must then agree)."""
        out = self.run_tool([PAC_DUMP, "--config", config_path, "--explain"] + urls)
        self.assertEqual(out.returncode, 0, out.stderr)
        lines = out.stdout.splitlines()
        self.assertEqual(len(lines), len(urls))
        result = {url: json.loads(line) for url, line in zip(urls, lines)}
        if BIN and os.access(BIN, os.X_OK):
            probe = self.run_tool([BIN, "explain", "--json", "--config", config_path, urls[0]])
            if probe.returncode == 0:
                for url in urls:
                    cli = self.run_tool([BIN, "explain", "--json", "--config", config_path, url])
                    self.assertEqual(cli.returncode, 0, cli.stderr)
                    j = json.loads(cli.stdout)
                    self.assertEqual((j["action"], j["rule"], j["bypass"]),
                                     (result[url]["action"], result[url]["rule"],
                                      result[url]["bypass"]), url)
        return result

    def check(self, config_text, cases):
        config_path = self.write("switchyard.yaml", config_text)
        urls = [u for u, _ in cases]
        self.assertEqual(len(set(urls)), len(urls), "duplicate URL in the table")
        pac = self.pac_answers(config_path, urls)
        explained = self.explain_answers(config_path, urls)
        for url, expected in cases:
            with self.subTest(url=url):
                j = explained[url]
                self.assertEqual(pac_answer_from_explain(j), expected,
                                 "the table disagrees with explain: %s" % json.dumps(j))
                rows = pac[url]
                self.assertEqual(len(rows), 2 if "[" in url else 1)
                for row in rows:
                    self.assertEqual(row["answer"], expected,
                                     "PAC(host=%r) vs explain %s" % (row["host"], json.dumps(j)))

    def test_no_proxy_classes_and_rules(self):
        self.assertGreaterEqual(len(CASES_MAIN), 40)
        self.check(CONFIG_MAIN, CASES_MAIN)

    def test_star_entry(self):
        self.check(CONFIG_STAR, CASES_STAR)

    def test_no_parent_proxy(self):
        self.check(CONFIG_NOPARENT, CASES_NOPARENT)

    def test_pac_is_deterministic_and_names_the_proxy(self):
        config_path = self.write("switchyard.yaml", CONFIG_MAIN)
        a = self.run_tool([PAC_DUMP, "--config", config_path, "--proxy", "[::1]:3128"])
        b = self.run_tool([PAC_DUMP, "--config", config_path, "--proxy", "[::1]:3128"])
        self.assertEqual(a.returncode, 0, a.stderr)
        self.assertEqual(a.stdout, b.stdout)
        self.assertIn('var SY_PROXY = "PROXY [::1]:3128";', a.stdout)
        # The upstream rule's credentials are not part of the PAC.
        self.assertNotIn("secret", a.stdout)
        self.assertIn("function FindProxyForURL(url, host)", a.stdout)


if __name__ == "__main__":
    unittest.main()
