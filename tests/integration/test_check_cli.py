"""`switchyard check` and `switchyard import-env`: the real binary on real files.

check: every problem on stderr as `file:line:col: message`, exit 1; a valid
file gives one summary line on stdout, exit 0. import-env: YAML that check
accepts and that carries every variable back exactly.
"""
import ast
import os
import re
import subprocess
import tempfile
import unittest

from harness import BIN, Daemon

# The variables Switchyard reads, as import-env prints them.
ENV_NAMES = ["GOPROXY", "GOPRIVATE", "GONOPROXY", "GONOSUMDB", "GOSUMDB", "NO_PROXY",
             "no_proxy", "HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"]

GOOD = """\
listen: ["127.0.0.1:0", "[::1]:0"]
admin: "127.0.0.1:0"
env:
  GOPROXY: "https://proxy.golang.org,direct"
  GOPRIVATE: "git.company.com,*.internal"
  NO_PROXY: "localhost,.corp.example.com,10.0.0.0/8"
inherit_env: true
rules:
  - name: golang-via-mirror
    match: { hosts: "proxy.golang.org" }
    action: mirror
    mirrors: "https://goproxy.io,direct"
    intercept: true
    cache: true
  - name: private-modules
    match: { modules: ["git.company.com", "*.internal"] }
    action: direct
  - name: corp-parent
    match: { hosts: ".corp.example.com" }
    action: upstream
    upstream: "http://user:pass@parent.corp:8080"
tls: { ca_dir: "/var/lib/switchyard/ca" }
cache: { dir: "/var/cache/switchyard", max_size: "10GiB", mutable_ttl: "5m" }
access: { allow_clients: "127.0.0.0/8, ::1", connect_ports: [443, 8443] }
limits: { header_timeout: 10s, idle_timeout: 1h30m, max_header_bytes: 64KiB }
log: { level: warn, format: json, decisions: stderr }
"""

BAD = """\
listen: 5
listn: []
inherit_env: "yes"
env:
  goproxy: "x"
rules:
  - name: a
    match: { hosts: proxy.golang.org }
    action: mirror
  - name: a
    match: {}
    action: upstream
    upstream: "socks5://p:1"
limits: { header_timeout: 10 }
"""

# (line, column, text the message must contain), in file order.
BAD_ERRORS = [
    (1, 9, "listen: expected a list or a comma-separated string, got integer 5"),
    (2, 1, 'unknown key "listn" (did you mean "listen"?)'),
    (3, 14, 'inherit_env: expected true or false, got string "yes"'),
    (5, 3, 'env: unknown key "goproxy" (did you mean "GOPROXY"?)'),
    (9, 13, 'action mirror needs "mirrors"'),
    (9, 13, "needs intercept: true"),
    (10, 11, 'duplicate rule name "a" (first at line 7)'),
    (11, 12, 'needs "hosts" and/or "modules"'),
    (13, 15, 'unsupported scheme "socks5"'),
    (14, 27, 'missing unit in "10"'),
]


def clean_env(extra=None):
    """The test's environment without any proxy or Go variable, plus `extra`."""
    env = {k: v for k, v in os.environ.items()
           if k.lower() not in ("http_proxy", "https_proxy", "no_proxy", "all_proxy")
           and not k.startswith("GO")}
    env.update(extra or {})
    return env


def run(*args, env=None):
    if not BIN:
        raise RuntimeError("SWITCHYARD_BIN is not set (run through ctest)")
    return subprocess.run([BIN] + list(args), capture_output=True, text=True,
                          env=clean_env(env), timeout=60, stdin=subprocess.DEVNULL)


class CheckTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="sy-check-")
        self.addCleanup(self.tmp.cleanup)

    def write(self, name, text):
        path = os.path.join(self.tmp.name, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def test_good_config_prints_summary(self):
        path = self.write("good.yaml", GOOD)
        r = run("check", "--config", path, env={"GONOSUMDB": "x.example"})
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stderr, "")
        self.assertEqual(
            r.stdout,
            "ok: 2 listeners, 3 rules, env from config (GOPROXY, GOPRIVATE, NO_PROXY) "
            "and process (GONOSUMDB)\n")

    def test_bad_config_lists_every_error_with_position(self):
        path = self.write("bad.yaml", BAD)
        r = run("check", "--config", path)
        self.assertEqual(r.returncode, 1)
        self.assertEqual(r.stdout, "")
        lines = r.stderr.splitlines()
        self.assertEqual(len(lines), len(BAD_ERRORS), r.stderr)
        for line, (ln, col, text) in zip(lines, BAD_ERRORS):
            with self.subTest(line=line):
                self.assertTrue(line.startswith("%s:%d:%d: " % (path, ln, col)), line)
                self.assertIn(text, line)

    def test_yaml_syntax_error_has_a_position(self):
        path = self.write("syntax.yaml", "log:\n  level: info\n format: json\n")
        r = run("check", "--config", path)
        self.assertEqual(r.returncode, 1)
        self.assertRegex(r.stderr, r"^%s:3:2: YAML syntax error: .+\n$" % re.escape(path))

    def test_missing_file(self):
        path = os.path.join(self.tmp.name, "absent.yaml")
        r = run("check", "--config", path)
        self.assertEqual(r.returncode, 1)
        self.assertEqual(r.stdout, "")
        self.assertEqual(r.stderr, "%s: cannot open: No such file or directory\n" % path)

    def test_check_requires_config(self):
        r = run("check")
        self.assertNotEqual(r.returncode, 0)


class ImportEnvTest(unittest.TestCase):
    # Values chosen to break naive YAML writing: flow indicators, anchors'
    # '*', YAML 1.1 booleans, quotes, backslashes, control characters,
    # leading and trailing blanks, non-ASCII text, and the empty string.
    TRICKY = {
        "GOPROXY": "off",
        "GOPRIVATE": "*.corp,{a},[b]: #c",
        "GONOPROXY": "",
        "GONOSUMDB": "none",
        "GOSUMDB": "sum.golang.org https://sum.golang.google.cn",
        "NO_PROXY": "*",
        "no_proxy": ' "quoted" \\back\\slash\t\x01 ',
        "HTTPS_PROXY": "http://user:p%40ss@parent.example:8080",
        "https_proxy": "parent.example:3128",
        "HTTP_PROXY": "",
        "http_proxy": "http://bücher.example:80",
    }

    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="sy-import-")
        self.addCleanup(self.tmp.cleanup)

    def import_env(self, env):
        r = run("import-env", env=env)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stderr, "")
        return r.stdout

    @staticmethod
    def parse_env_block(text):
        """The `env:` map of import-env's output. Values are double-quoted
        YAML scalars, whose escapes here are a subset of Python's."""
        values = {}
        for line in text.splitlines():
            m = re.match(r'^  (\w+): (".*")$', line)
            if m:
                values[m.group(1)] = ast.literal_eval(m.group(2))
        return values

    def test_round_trip_through_check(self):
        text = self.import_env(self.TRICKY)
        self.assertIn("inherit_env: false\n", text)
        self.assertEqual(self.parse_env_block(text), self.TRICKY)
        path = os.path.join(self.tmp.name, "imported.yaml")
        with open(path, "w") as f:
            f.write(text)
        # A different process environment must not matter: inherit_env: false.
        r = run("check", "--config", path, env={"GOPROXY": "https://elsewhere", "GOPRIVATE": "x"})
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(
            r.stdout,
            "ok: 1 listener, 0 rules, env from config (GOPROXY, GOPRIVATE, GONOSUMDB, GOSUMDB, "
            "NO_PROXY, HTTPS_PROXY, http_proxy)\n")

    def test_only_set_variables_are_written(self):
        text = self.import_env({"no_proxy": "a.example", "GOFLAGS": "-mod=mod"})
        self.assertEqual(self.parse_env_block(text), {"no_proxy": "a.example"})
        self.assertNotIn("GOFLAGS", text)

    def test_empty_environment_still_checks(self):
        text = self.import_env({})
        self.assertEqual(self.parse_env_block(text), {})
        path = os.path.join(self.tmp.name, "empty.yaml")
        with open(path, "w") as f:
            f.write(text)
        r = run("check", "--config", path)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, "ok: 1 listener, 0 rules, env: built-in defaults only\n")

    def test_daemon_starts_from_imported_config(self):
        text = self.import_env({"NO_PROXY": "localhost,.corp", "GOPRIVATE": "*.corp"})
        with Daemon(config=text) as d:
            self.assertNotEqual(d.port, 0)
            self.assertEqual(d.stop(), 0)


if __name__ == "__main__":
    unittest.main()
