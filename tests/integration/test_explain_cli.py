"""`switchyard explain`: the daemon's decide() on a config, with no daemon.

Tables of targets against a config file and against the process environment,
the JSON keys of DESIGN.md, the curl/Python "others", and import-env giving
the same answers as the environment it was made from.
"""
import json
import os
import subprocess
import tempfile
import unittest

BIN = os.environ.get("SWITCHYARD_BIN", "")

CONFIG = """\
env:
  GOPROXY: "https://proxy.golang.org,direct"
  GOPRIVATE: "git.company.com,*.internal"
  NO_PROXY: "localhost,.corp.example.com,10.0.0.0/8,*.svc:8080,a.com b.com"
  HTTPS_PROXY: "http://user:secret@parent.example:3128"
inherit_env: false
tls: { ca_dir: "/tmp/switchyard-test-ca" }
rules:
  - name: golang-via-mirror
    match: { hosts: "proxy.golang.org" }
    action: mirror
    mirrors: "https://goproxy.cn|https://goproxy.io,direct"
    intercept: true
  - name: private-modules
    match: { modules: "git.company.com,*.internal" }
    action: direct
  - name: no-ads
    match: { hosts: ".doubleclick.net" }
    action: deny
"""


def clean_env(extra=None):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("GO") and k.lower() not in ("no_proxy", "http_proxy", "https_proxy")}
    env.update(extra or {})
    return env


def explain(*args, env=None):
    r = subprocess.run([BIN, "explain", "--json", *args], capture_output=True, text=True,
                       env=clean_env(env), timeout=30)
    if r.returncode != 0:
        raise AssertionError("explain %s failed (%d): %s" % (args, r.returncode, r.stderr))
    return json.loads(r.stdout)


class ExplainWithConfig(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.cfg = os.path.join(cls.tmp.name, "gw.yaml")
        with open(cls.cfg, "w") as f:
            f.write(CONFIG)

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def line_of(self, text):
        for i, line in enumerate(CONFIG.splitlines(), 1):
            if text in line:
                return "%s:%d" % (self.cfg, i)
        raise KeyError(text)

    def test_table(self):
        # target, action, rule, source (or None for a config line lookup), matched, bypass
        cases = [
            ("proxy.golang.org", "mirror", "golang-via-mirror", "- name: golang-via-mirror",
             {"list": "rule:golang-via-mirror", "index": 0, "entry": "proxy.golang.org", "how": "name"}, False),
            ("https://proxy.golang.org/github.com/x/@v/list", "mirror", "golang-via-mirror",
             "- name: golang-via-mirror",
             {"list": "rule:golang-via-mirror", "index": 0, "entry": "proxy.golang.org", "how": "name"}, False),
            ("ads.doubleclick.net:443", "deny", "no-ads", "- name: no-ads",
             {"list": "rule:no-ads", "index": 0, "entry": ".doubleclick.net", "how": "subdomain"}, False),
            ("doubleclick.net", "upstream", "env:HTTPS_PROXY", "HTTPS_PROXY", "none", False),
            ("git.corp.example.com", "direct", "env:NO_PROXY", "NO_PROXY",
             {"list": "NO_PROXY", "index": 1, "entry": ".corp.example.com", "how": "subdomain"}, True),
            ("corp.example.com", "upstream", "env:HTTPS_PROXY", "HTTPS_PROXY", "none", False),
            ("10.20.30.40:443", "direct", "env:NO_PROXY", "NO_PROXY",
             {"list": "NO_PROXY", "index": 2, "entry": "10.0.0.0/8", "how": "cidr"}, True),
            ("[::1]:443", "direct", "env:NO_PROXY", "NO_PROXY", "loopback", True),
            ("127.0.0.1", "direct", "env:NO_PROXY", "NO_PROXY", "loopback", True),
            ("http://api.svc:8080/x", "direct", "env:NO_PROXY", "NO_PROXY",
             {"list": "NO_PROXY", "index": 3, "entry": "*.svc:8080", "how": "subdomain"}, True),
            ("http://api.svc/x", "direct", "default", "builtin", "none", False),
            ("a.com", "upstream", "env:HTTPS_PROXY", "HTTPS_PROXY", "none", False),
        ]
        for target, action, rule, source, matched, bypass in cases:
            with self.subTest(target=target):
                j = explain("--config", self.cfg, target)
                self.assertEqual(j["action"], action)
                self.assertEqual(j["rule"], rule)
                if source == "builtin":
                    self.assertEqual(j["source"], "builtin")
                else:
                    self.assertEqual(j["source"], self.line_of(source))
                self.assertEqual(j["matched"], matched)
                self.assertEqual(j["bypass"], bypass)
                self.assertIn("others", j)
                if action == "upstream":
                    self.assertNotIn("secret", json.dumps(j))
                    self.assertEqual(j["upstream"], "http://user:***@parent.example:3128")
                if action == "mirror":
                    self.assertEqual(j["mirrors"], "https://goproxy.cn|https://goproxy.io,direct")

    def test_others_name_where_curl_and_python_differ(self):
        # Loopback short-cut is Go's alone.
        j = explain("--config", self.cfg, "127.0.0.1:443")
        self.assertEqual(j["others"], {"curl": {"bypass": False}, "python": {"bypass": False}})
        # ".corp.example.com": curl and Python strip the dot and match the apex too.
        j = explain("--config", self.cfg, "corp.example.com")
        self.assertEqual(j["others"], {"curl": {"bypass": True}, "python": {"bypass": True}})
        # 7.88.1 splits on blanks too: "a.com b.com" is two entries for curl only.
        j = explain("--config", self.cfg, "b.com")
        self.assertEqual(j["others"], {"curl": {"bypass": True}})
        # Everyone agrees on a plain subdomain match.
        j = explain("--config", self.cfg, "x.corp.example.com")
        self.assertEqual(j["others"], {})

    def test_module(self):
        j = explain("--config", self.cfg, "--module", "git.company.com/team/lib")
        self.assertEqual(j["action"], "direct")
        self.assertEqual(j["rule"], "private-modules")
        self.assertTrue(j["gonoproxy"])
        self.assertTrue(j["gonosumdb"])
        self.assertEqual(j["gonoproxy_pattern"], "git.company.com")
        j = explain("--config", self.cfg, "--module", "db.internal/x")
        self.assertEqual(j["gonoproxy_pattern"], "*.internal")
        j = explain("--config", self.cfg, "--module", "github.com/pkg/errors")
        self.assertEqual(j["action"], "mirror")
        self.assertEqual(j["rule"], "env:GOPROXY")
        self.assertFalse(j["gonoproxy"])
        self.assertIsNone(j["gonoproxy_pattern"])

    def test_module_read_from_url_path(self):
        # The daemon reads GOPROXY-protocol paths of intercepted and plain
        # requests the same way: the leak guard holds whatever rule matched.
        cases = [
            ("https://proxy.golang.org/git.company.com/x/@v/list", "git.company.com/x",
             "GONOPROXY pattern \"git.company.com\""),
            ("https://proxy.golang.org/github.com/!azure/x/@v/v1.0.0.zip", "github.com/Azure/x", None),
            ("http://mirror.example/api/go/db.internal/m/@latest", "db.internal/m",
             "GONOPROXY pattern \"*.internal\""),
            ("https://sum.golang.org/lookup/git.company.com/x@v1.0.0", "git.company.com/x",
             "GONOSUMDB pattern \"git.company.com\""),
            ("https://proxy.golang.org/sumdb/sum.golang.org/lookup/git.company.com/x@v1.0.0",
             "git.company.com/x", "GONOSUMDB"),
            ("https://proxy.golang.org/sumdb/sum.golang.org/latest", None, None),
            ("https://deb.debian.org/debian/dists/bookworm/InRelease", None, None),
        ]
        for url, module, guard in cases:
            with self.subTest(url=url):
                j = explain("--config", self.cfg, url)
                self.assertEqual(j["module"], module)
                if guard is None:
                    self.assertIsNone(j["leak_guard"] if "leak_guard" in j else None)
                else:
                    self.assertIn(guard, j["leak_guard"])

    def test_text_output_names_rule_and_entry(self):
        r = subprocess.run([BIN, "explain", "--config", self.cfg, "git.corp.example.com"],
                           capture_output=True, text=True, env=clean_env(), timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn('NO_PROXY entry ".corp.example.com" (subdomain)', r.stdout)
        self.assertIn("env:NO_PROXY", r.stdout)

    def test_bad_target(self):
        r = subprocess.run([BIN, "explain", "--config", self.cfg, "ftp://x"], capture_output=True,
                           text=True, env=clean_env(), timeout=30)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("scheme", r.stderr)


class ExplainFromEnvironment(unittest.TestCase):
    ENV = {
        "no_proxy": ".lower.example",          # Go: NO_PROXY wins; curl/python: no_proxy wins
        "NO_PROXY": "upper.example",
        "HTTPS_PROXY": "http://parent:3128",
        "GOPRIVATE": "example.org/private",
        "GONOPROXY": "",                       # empty -> GOPRIVATE
    }

    def test_precedence_and_sources(self):
        j = explain("www.upper.example", env=self.ENV)
        self.assertEqual(j["action"], "direct")
        self.assertEqual(j["source"], "env:NO_PROXY")
        self.assertEqual(j["others"], {"curl": {"bypass": False}, "python": {"bypass": False}})
        j = explain("a.lower.example", env=self.ENV)
        self.assertEqual(j["action"], "upstream")
        self.assertEqual(j["source"], "env:HTTPS_PROXY")
        self.assertEqual(j["others"], {"curl": {"bypass": True}, "python": {"bypass": True}})
        j = explain("--module", "example.org/private/x", env=self.ENV)
        self.assertTrue(j["gonoproxy"])
        self.assertEqual(j["gonoproxy_pattern"], "example.org/private")

    def test_import_env_gives_the_same_answers(self):
        r = subprocess.run([BIN, "import-env"], capture_output=True, text=True,
                           env=clean_env(self.ENV), timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        with tempfile.TemporaryDirectory() as tmp:
            cfg = os.path.join(tmp, "imported.yaml")
            with open(cfg, "w") as f:
                f.write(r.stdout)
            chk = subprocess.run([BIN, "check", "--config", cfg], capture_output=True, text=True,
                                 env=clean_env(), timeout=30)
            self.assertEqual(chk.returncode, 0, chk.stderr + r.stdout)
            targets = ["www.upper.example", "a.lower.example", "127.0.0.1", "other.example",
                       "http://upper.example/x"]
            for t in targets:
                with self.subTest(target=t):
                    a = explain(t, env=self.ENV)
                    b = explain("--config", cfg, t)
                    for key in ("action", "rule", "matched", "bypass", "others"):
                        self.assertEqual(a[key], b[key], key)
            a = explain("--module", "example.org/private/x", env=self.ENV)
            b = explain("--config", cfg, "--module", "example.org/private/x")
            for key in ("action", "rule", "gonoproxy", "gonosumdb", "gonoproxy_pattern"):
                self.assertEqual(a[key], b[key], key)


if __name__ == "__main__":
    unittest.main()
