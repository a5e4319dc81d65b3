"""The real go command through an intercepting switchyard: GOPROXY names
proxy.golang.org, HTTPS_PROXY is switchyard, which decrypts the tunnel with
its own CA and serves every module request from loopback mirrors holding a
GOPROXY tree this test generates. A catch-all deny rule makes sure nothing
reaches the network.

One table drives the same go steps (`go mod download`, then `go build` of a
program needing two modules) through mirror lists of two entries whose first
mirror misbehaves: go's fall-through rules (',' only after 404/410, '|' after
any error) decide whether the build succeeds via the second mirror or the go
command sees a 502 and stops."""
import http.server
import os
import shutil
import subprocess
import tempfile
import unittest
import urllib.parse

from gomod import write_module
from harness import BIN, Daemon, RecordingTlsServer, free_port, make_cert, proxy_config

GO = shutil.which("go")


class _TreeHandler(http.server.SimpleHTTPRequestHandler):
    """Serves the GOPROXY tree (404 for what it lacks)."""

    def log_message(self, *args):
        pass


def status_handler(status):
    """A handler class answering `status` with a short text body to every GET."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            body = ("mirror says %d\n" % status).encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    return Handler


# What a mirror of the table does: serve the tree, answer one status to
# everything, or refuse connections (a closed port).
SERVE, REFUSE = "serve", "refuse"

# The module zips a successful run fetches: one by `go mod download`, one
# more by `go build`.
ZIPS = ["/example.com/hello/@v/v1.0.0.zip", "/example.com/greet/@v/v1.2.0.zip"]

# name, separator, what m1 does, whether the go steps succeed, the expected
# `next` of m1's attempt.
CASES = [
    ("404-comma-falls-through", ",", 404, True, "fell through: 404 after ','"),
    ("refused-pipe-falls-through", "|", REFUSE, True, "fell through: transport error after '|'"),
    ("refused-comma-stops", ",", REFUSE, False, "stopped"),
    ("500-pipe-falls-through", "|", 500, True, "fell through: 500 after '|'"),
    ("500-comma-stops", ",", 500, False, "stopped"),
]


@unittest.skipUnless(GO, "the go command is not installed")
class GoClientTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        # CA, mirror certificate, module tree and the go build cache are
        # shared by all cases; the module cache is wiped per case.
        cls.shared = tempfile.TemporaryDirectory(prefix="sy-go-")
        t = cls.shared.name
        cls.ca_dir = os.path.join(t, "ca")
        subprocess.run([BIN, "ca", "init", "--dir", cls.ca_dir], check=True, capture_output=True)
        os.makedirs(os.path.join(t, "mcert"))
        cls.cert = make_cert(os.path.join(t, "mcert"),
                             names=("mirror.test", "m1.test", "m2.test"))
        cls.tree = os.path.join(t, "tree")
        write_module(cls.tree, "example.com/hello", "v1.0.0", {
            "go.mod": "module example.com/hello\n\ngo 1.18\n",
            "hello.go": "package hello\n\nfunc Hello() string { return \"hello\" }\n",
        })
        write_module(cls.tree, "example.com/greet", "v1.2.0", {
            "go.mod": "module example.com/greet\n\ngo 1.18\n",
            "greet.go": "package greet\n\nfunc Greet(s string) string { return s + \", world\" }\n",
        })
        cls.app = os.path.join(t, "app")
        os.makedirs(cls.app)
        with open(os.path.join(cls.app, "main.go"), "w") as f:
            f.write("package main\n\nimport (\n\t\"fmt\"\n\n\t\"example.com/greet\"\n"
                    "\t\"example.com/hello\"\n)\n\nfunc main() { fmt.Println(greet.Greet("
                    "hello.Hello())) }\n")
        cls.gocache = os.path.join(t, "gocache")

    @classmethod
    def tearDownClass(cls):
        cls.shared.cleanup()

    def setUp(self):
        self.servers = []
        self.d = None

    def tearDown(self):
        self.stop_case()

    def stop_case(self):
        if self.d is not None:
            self.d.stop()
            self.d = None
        for s in self.servers:
            s.close()
        self.servers = []

    def mirror(self, behaviour):
        """A loopback https mirror doing `behaviour`; returns (port, server or None)."""
        if behaviour == REFUSE:
            return free_port(), None
        if behaviour == SERVE:
            s = RecordingTlsServer(self.cert, _TreeHandler, directory=self.tree)
        else:
            s = RecordingTlsServer(self.cert, status_handler(behaviour))
        self.servers.append(s)
        return s.port, s

    def start_case(self, mirrors):
        """A daemon whose only allowed host is proxy.golang.org, mirrored to
        `mirrors`; a fresh module cache and go.mod for the app."""
        config = proxy_config(
            "tls: { ca_dir: \"%s\", upstream_ca_file: \"%s\" }\n"
            "resolve: { mirror.test: \"127.0.0.1\", m1.test: \"127.0.0.1\","
            " m2.test: \"127.0.0.1\" }\n"
            "rules:\n"
            "  - name: goproxy\n"
            "    match: { hosts: \"proxy.golang.org\" }\n"
            "    action: mirror\n"
            "    mirrors: \"%s\"\n"
            "    intercept: true\n"
            "  - name: nothing-else\n"
            "    match: { hosts: \"*\" }\n"
            "    action: deny\n" % (self.ca_dir, self.cert[0], mirrors))
        self.d = Daemon(config=config)
        t = self.shared.name
        gopath = os.path.join(t, "gopath")
        if os.path.exists(gopath):
            shutil.rmtree(gopath)  # -modcacherw makes the cache removable
        with open(os.path.join(self.app, "go.mod"), "w") as f:
            f.write("module example.com/app\n\ngo 1.18\n\nrequire (\n"
                    "\texample.com/greet v1.2.0\n\texample.com/hello v1.0.0\n)\n")
        sum_file = os.path.join(self.app, "go.sum")
        if os.path.exists(sum_file):
            os.remove(sum_file)
        self.gomodcache = os.path.join(gopath, "pkg", "mod")
        self.env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": t,
            "GOPROXY": "https://proxy.golang.org,direct",
            "HTTPS_PROXY": self.d.proxy_url,
            "HTTP_PROXY": self.d.proxy_url,
            "SSL_CERT_FILE": os.path.join(self.ca_dir, "ca.crt"),
            "SSL_CERT_DIR": os.path.join(t, "no-certs"),
            "GOSUMDB": "off",
            "GOFLAGS": "-modcacherw",
            "GOPATH": gopath,
            "GOMODCACHE": self.gomodcache,
            "GOCACHE": self.gocache,
            "GO111MODULE": "on",
            "GOTOOLCHAIN": "local",
        }

    def go(self, *args, cwd=None):
        return subprocess.run([GO, *args], capture_output=True, text=True, env=self.env,
                              cwd=cwd or self.shared.name, timeout=300)

    def download_and_build(self):
        """The go steps of every case. Returns the CompletedProcess of the
        first step that failed, or None when both succeeded."""
        r = self.go("mod", "download", "example.com/hello@v1.0.0")
        if r.returncode != 0:
            return r
        self.assertTrue(os.path.isfile(
            os.path.join(self.gomodcache, "example.com", "hello@v1.0.0", "hello.go")))
        binary = os.path.join(self.app, "app")
        if os.path.exists(binary):
            os.remove(binary)
        r = self.go("build", "-mod=mod", "-o", "app", ".", cwd=self.app)
        if r.returncode != 0:
            return r
        out = subprocess.run([binary], capture_output=True, text=True)
        self.assertEqual(out.stdout, "hello, world\n")
        return None

    def denied(self):
        return [x for x in self.d.decisions() if x.get("rule") == "nothing-else"]

    def test_single_mirror(self):
        port, m = self.mirror(SERVE)
        self.start_case("https://mirror.test:%d" % port)
        failed = self.download_and_build()
        self.assertIsNone(failed, failed and failed.stdout + failed.stderr)
        self.assertEqual(sorted(p for p in m.paths() if p.endswith(".zip")), sorted(ZIPS))
        recs = self.d.wait_for_decision(lambda x: x.get("method") == "GET" and
                                        x["target"].endswith("v1.0.0.zip"))
        self.assertEqual(recs[0]["status"], 200)
        self.assertEqual(recs[0]["rule"], "goproxy")
        # Nothing went anywhere but the mirror: no CONNECT was denied.
        self.assertEqual(self.denied(), [])

    def test_two_mirrors(self):
        for name, sep, m1_does, succeeds, m1_next in CASES:
            with self.subTest(name):
                try:
                    self.run_two_mirror_case(sep, m1_does, succeeds, m1_next)
                finally:
                    self.stop_case()

    def run_two_mirror_case(self, sep, m1_does, succeeds, m1_next):
        p1, m1 = self.mirror(m1_does)
        p2, m2 = self.mirror(SERVE)
        base1, base2 = "https://m1.test:%d" % p1, "https://m2.test:%d" % p2
        self.start_case(base1 + sep + base2)
        failed = self.download_and_build()
        if succeeds:
            self.assertIsNone(failed, failed and failed.stdout + failed.stderr)
            self.assertEqual(sorted(p for p in m2.paths() if p.endswith(".zip")), sorted(ZIPS))
            if m1 is not None:
                # Every request m2 saw was tried at m1 first, and m1 saw no other.
                self.assertEqual(sorted(m1.paths()), sorted(m2.paths()))
            recs = self.d.wait_for_decision(lambda x: x.get("method") == "GET" and
                                            x["target"].endswith(".zip"), count=2)
            for rec in recs:
                self.assertEqual(rec["status"], 200, rec)
                path = urllib.parse.urlsplit(rec["target"]).path
                self.assertEqual([a["url"] for a in rec["attempts"]],
                                 [base1 + path, base2 + path], rec)
                self.assertEqual([a["next"] for a in rec["attempts"]], [m1_next, "served"], rec)
                self.assert_m1_attempt(rec["attempts"][0], m1_does)
                self.assertEqual(rec["attempts"][1]["status"], 200, rec)
        else:
            self.assertIsNotNone(failed, "the go command succeeded")
            self.assertEqual(failed.args[1:3], ["mod", "download"])
            # go stops at the 502 (not a 404/410) and names it with our
            # reason phrase; it prints the text/plain body up to its first
            # blank line, which our body does not have: the user sees which
            # mirror failed and why.
            self.assertIn("reading https://proxy.golang.org/example.com/hello/@v/v1.0.0.info:"
                          " 502 Mirror failed\n\tserver response:\n\t502 Mirror failed\n",
                          failed.stderr)
            self.assertRegex(failed.stderr, r"\t  1\. https://m1\.test:\d+/example\.com/hello/"
                             r"@v/v1\.0\.0\.info: .*; stopped")
            self.assertEqual(m2.paths(), [])
            recs = self.d.wait_for_decision(lambda x: x.get("status") == 502)
            rec = recs[0]
            self.assertEqual(rec["rule"], "goproxy")
            self.assertEqual(len(rec["attempts"]), 1, rec)
            self.assertEqual(rec["attempts"][0]["next"], m1_next, rec)
            self.assertTrue(rec["attempts"][0]["url"].startswith(base1 + "/example.com/hello/"))
            self.assert_m1_attempt(rec["attempts"][0], m1_does)
            if m1 is not None:
                self.assertTrue(m1.paths(), "m1 saw no request")
                self.assertTrue(all(p.startswith("/example.com/hello/@v/") for p in m1.paths()),
                                m1.paths())
        self.assertEqual(self.denied(), [])

    def assert_m1_attempt(self, attempt, m1_does):
        if m1_does == REFUSE:
            self.assertIsNone(attempt["status"], attempt)
            self.assertIsNotNone(attempt["error"], attempt)
        else:
            self.assertEqual(attempt["status"], m1_does, attempt)


if __name__ == "__main__":
    unittest.main()
