"""Switchyard as a GOPROXY server with its disk cache (issue 6): the real go
command with GOPROXY=http://switchyard, a loopback origin serving a GOPROXY
tree the test generates, and the cache's promises — one upstream fetch for
50 concurrent misses, the first byte before the download ends, nothing broken
ever stored or served (a bad zip aborts the client; SIGKILL mid-download
leaves nothing half-made), stale mutable entries when the upstream is down,
LRU eviction within max_size, the leak guard, and the sumdb endpoints."""
import concurrent.futures
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import unittest

from gomod import GoproxyOrigin, sha256_file, write_module
from harness import (BIN, Daemon, admin_port, make_cert, proxy_config, read_reply,
                     scrape_metrics, wait_until)

GO = shutil.which("go")

HELLO = {"go.mod": "module example.com/hello\n\ngo 1.18\n",
         "hello.go": "package hello\n\nfunc Hello() string { return \"hello\" }\n"}
GREET = {"go.mod": "module example.com/greet\n\ngo 1.18\n",
         "greet.go": "package greet\n\nfunc Greet(s string) string { return s + \", world\" }\n"}


def get(port, path, deadline=30.0, headers=""):
    """One GET on a fresh connection; returns (HttpReply)."""
    with socket.create_connection(("127.0.0.1", port), timeout=deadline) as s:
        s.sendall(("GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n%sConnection: close\r\n\r\n"
                   % (path, port, headers)).encode())
        return read_reply(s, deadline=deadline)


class GoproxyServerTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="sy-gps-")
        t = self.tmp.name
        self.tree = os.path.join(t, "tree")
        self.hello_zip = write_module(self.tree, "example.com/hello", "v1.0.0", HELLO)
        write_module(self.tree, "example.com/greet", "v1.2.0", GREET)
        self.big_zip = write_module(self.tree, "example.com/Big", "v1.0.0",
                                    {"go.mod": "module example.com/Big\n"},
                                    extra_zip_bytes=8 << 20)
        self.origin = GoproxyOrigin(self.tree)
        self.cache_dir = os.path.join(t, "cache")
        self.daemon = None

    def tearDown(self):
        if self.daemon is not None:
            self.daemon.stop()
        self.origin.close()
        self.tmp.cleanup()

    def start(self, cache_extra="", env_extra="", rules=""):
        config = proxy_config(
            "inherit_env: false\n"
            "admin: \"127.0.0.1:0\"\n"
            "env:\n"
            "  GOPROXY: \"%s,direct\"\n"
            "  GOPRIVATE: \"git.company.com\"\n%s"
            "cache: { dir: \"%s\" %s }\n%s"
            % (self.origin.url(), env_extra, self.cache_dir, cache_extra, rules))
        self.daemon = Daemon(config=config)
        self.port = int(self.daemon.proxy_url.rsplit(":", 1)[1])
        return self.daemon

    def go_env(self):
        t = self.tmp.name
        return {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": t,
            "GOPROXY": self.daemon.proxy_url,
            "GOSUMDB": "off",
            "GOFLAGS": "-modcacherw",
            "GOPATH": os.path.join(t, "gopath"),
            "GOMODCACHE": os.path.join(t, "gopath", "pkg", "mod"),
            "GOCACHE": os.path.join(t, "gocache"),
            "GO111MODULE": "on",
            "GOTOOLCHAIN": "local",
            "CGO_ENABLED": "0",
        }

    def go(self, *args, cwd=None):
        return subprocess.run([GO, *args], capture_output=True, text=True, env=self.go_env(),
                              cwd=cwd or self.tmp.name, timeout=300)

    @unittest.skipIf(GO is None, "go not installed (make test installs golang-go)")
    def test_go_build_then_again_from_cache_with_origin_down(self):
        self.start()
        r = self.go("mod", "download", "-json", "example.com/hello@v1.0.0")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        app = os.path.join(self.tmp.name, "app")
        write_app(app)
        r = self.go("build", "-mod=mod", "-o", "app", ".", cwd=app)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        out = subprocess.run([os.path.join(app, "app")], capture_output=True, text=True)
        self.assertEqual(out.stdout, "hello, world\n")
        zips = [x for x in self.daemon.decisions() if x.get("target", "").endswith(".zip")]
        self.assertEqual({x["cache"] for x in zips}, {"miss"})
        self.assertTrue(all(x["status"] == 200 for x in zips))

        # The origin goes away and the module cache with it: the build works
        # from switchyard's cache alone.
        self.origin.close()
        shutil.rmtree(os.path.join(self.tmp.name, "gopath"))
        os.remove(os.path.join(app, "app"))
        r = self.go("build", "-mod=mod", "-o", "app", ".", cwd=app)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        hits = self.daemon.wait_for_decision(
            lambda x: x.get("target", "").endswith("greet/@v/v1.2.0.zip") and x["cache"] == "hit")
        self.assertEqual(hits[0]["status"], 200)

        # A module never fetched fails fast and says why.
        r = self.go("mod", "download", "example.com/never@v1.0.0")
        self.assertNotEqual(r.returncode, 0)
        self.assertRegex(r.stderr, r"(502|404)")
        self.assertIn("example.com/never", r.stderr)

    def test_fifty_concurrent_misses_make_one_upstream_fetch(self):
        self.start()
        path = "/example.com/!big/@v/v1.0.0.zip"
        want = sha256_file(self.big_zip)

        def fetch(_):
            reply = get(self.port, path)
            return reply.status, hashlib.sha256(reply.body).hexdigest()

        with concurrent.futures.ThreadPoolExecutor(max_workers=50) as pool:
            results = list(pool.map(fetch, range(50)))
        self.assertEqual(results, [(200, want)] * 50)
        self.assertEqual(self.origin.count(path), 1)
        lines = self.daemon.wait_for_decision(lambda x: x.get("target") == path, count=50)
        self.assertEqual(sum(1 for x in lines if x["attempts"]), 1)

    def test_first_byte_before_the_download_ends(self):
        self.start()
        path = "/example.com/!big/@v/v1.0.0.zip"
        release = self.origin.gate(path, after=100_000)
        with socket.create_connection(("127.0.0.1", self.port), timeout=30) as s:
            s.sendall(("GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % path).encode())
            got = b""
            while b"\r\n\r\n" not in got or len(got.split(b"\r\n\r\n", 1)[1]) < 20_000:
                chunk = s.recv(65536)
                self.assertTrue(chunk, "connection closed early")
                got += chunk
            # The origin is still holding the rest back.
            self.assertFalse(release.is_set())
            self.assertIn(b"200", got.split(b"\r\n", 1)[0])
            release.set()
            reply_rest = b""
            total = int(got.split(b"Content-Length: ", 1)[1].split(b"\r\n", 1)[0])
            body = got.split(b"\r\n\r\n", 1)[1]
            while len(body) + len(reply_rest) < total:
                chunk = s.recv(1 << 20)
                self.assertTrue(chunk)
                reply_rest += chunk
        self.assertEqual(hashlib.sha256(body + reply_rest).hexdigest(), sha256_file(self.big_zip))

    def test_broken_zip_aborts_the_client_and_is_not_stored(self):
        self.start()
        path = "/example.com/hello/@v/v1.0.0.zip"
        self.origin.override(path, 200, b"this is not a zip file" * 100)
        reply = get(self.port, path)
        # The head went out before the end could be checked: the client sees
        # a broken-off body (reset or short), never a clean complete one.
        self.assertFalse(reply.complete, reply.body[:80])
        line = self.daemon.wait_for_decision(lambda x: x.get("target") == path)[0]
        self.assertEqual(line["cache"], "miss")
        reply = get(self.port, path)
        self.assertEqual(self.origin.count(path), 2)  # nothing was stored
        self.daemon.wait_for_log(r"not stored: .*zip")

    def test_sigkill_mid_download_leaves_nothing_broken(self):
        d = self.start()
        path = "/example.com/!big/@v/v1.0.0.zip"
        self.origin.gate(path, after=3 << 20)
        with socket.create_connection(("127.0.0.1", self.port), timeout=30) as s:
            s.sendall(("GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % path).encode())
            self.assertTrue(self.origin.first_bytes_sent.wait(30))
            got = s.recv(65536)
            self.assertIn(b"200", got)
            d.send_signal(signal.SIGKILL)
            d.proc.wait(30)
        self.daemon = None
        self.origin.gates.clear()
        # The temp file is left behind; data/ holds nothing for that key.
        self.assertFalse(os.path.exists(
            os.path.join(self.cache_dir, "data", "mod", "example.com", "!big", "@v",
                         "v1.0.0.zip")))
        self.start()
        self.assertEqual(os.listdir(os.path.join(self.cache_dir, "tmp")), [])
        for expect_cache in ("miss", "hit"):
            reply = get(self.port, path)
            self.assertEqual(reply.status, 200)
            self.assertEqual(hashlib.sha256(reply.body).hexdigest(), sha256_file(self.big_zip))
            line = self.daemon.wait_for_decision(
                lambda x: x.get("target") == path and x["cache"] == expect_cache)[0]
            self.assertEqual(line["status"], 200)

    def test_sigkill_during_concurrent_fills_then_verify(self):
        # Chaos (issue 8.6): several fills in flight — some finished and
        # stored, some held mid-body — when the daemon is killed. After a
        # restart `cache verify` finds nothing broken and every request gets
        # the origin's exact bytes.
        zips = {}
        for i in range(6):
            module = "example.com/chaos%d" % i
            zips["/%s/@v/v1.0.0.zip" % module] = write_module(
                self.tree, module, "v1.0.0", {"go.mod": "module %s\n" % module},
                extra_zip_bytes=(1 << 20) * (i + 1))
        held = [p for i, p in enumerate(sorted(zips)) if i % 2 == 1]
        for p in held:
            self.origin.gate(p, after=512 << 10)
        d = self.start()
        done = [p for p in sorted(zips) if p not in held]
        for p in done:
            self.assertEqual(get(self.port, p).status, 200)
        socks = []
        for p in held:
            s = socket.create_connection(("127.0.0.1", self.port), timeout=30)
            s.sendall(("GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % p).encode())
            socks.append(s)
        wait_until(lambda: all(self.origin.count(p) == 1 for p in held), what="fills started")
        for s in socks:
            self.assertIn(b"200", s.recv(65536))
        d.send_signal(signal.SIGKILL)
        d.proc.wait(30)
        for s in socks:
            s.close()
        self.daemon = None
        self.origin.gates.clear()
        r = subprocess.run([BIN, "cache", "verify", "--dir", self.cache_dir], capture_output=True,
                           text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.start()
        self.assertEqual(os.listdir(os.path.join(self.cache_dir, "tmp")), [])
        for p, local in sorted(zips.items()):
            reply = get(self.port, p)
            self.assertEqual(reply.status, 200)
            self.assertEqual(hashlib.sha256(reply.body).hexdigest(), sha256_file(local), p)
        lines = self.daemon.wait_for_decision(lambda x: x.get("target") in zips, count=len(zips))
        self.assertEqual({x["target"]: x["cache"] for x in lines},
                         {p: "miss" if p in held else "hit" for p in zips})

    def test_stale_mutable_entry_when_every_upstream_fails(self):
        self.start(cache_extra=", mutable_ttl: \"1ms\"")
        path = "/example.com/hello/@v/list"
        self.assertEqual(get(self.port, path).body, b"v1.0.0\n")
        self.origin.override(path, 500, b"upstream broken")
        reply = get(self.port, path)
        self.assertEqual(reply.status, 200)
        self.assertEqual(reply.body, b"v1.0.0\n")
        line = self.daemon.wait_for_decision(
            lambda x: x.get("target") == path and x["cache"] == "stale")[0]
        self.assertEqual(line["attempts"][0]["status"], 500)
        # A 404 is an answer, not a failure: it is passed on, not papered over.
        self.origin.override(path, 404, b"gone")
        self.assertEqual(get(self.port, path).status, 404)

    def test_immutable_hits_and_mutable_refresh(self):
        self.start(cache_extra=", mutable_ttl: \"1h\"")
        cases = [
            ("/example.com/hello/@v/v1.0.0.info", "application/json"),
            ("/example.com/hello/@v/v1.0.0.mod", "text/plain; charset=utf-8"),
            ("/example.com/hello/@v/v1.0.0.zip", "application/zip"),
            ("/example.com/hello/@v/list", "text/plain; charset=utf-8"),
        ]
        for path, ctype in cases:
            with self.subTest(path=path):
                first = get(self.port, path)
                second = get(self.port, path)
                self.assertEqual((first.status, second.status), (200, 200))
                self.assertEqual(first.body, second.body)
                self.assertEqual(second.headers.get("content-type"), ctype)
                self.assertEqual(self.origin.count(path), 1)

    def test_eviction_keeps_the_cache_within_max_size(self):
        self.start(cache_extra=", max_size: \"8MiB\"")
        big = "/example.com/!big/@v/v1.0.0.zip"
        small = "/example.com/hello/@v/v1.0.0.zip"
        self.assertEqual(get(self.port, big).status, 200)
        self.assertEqual(get(self.port, small).status, 200)
        self.assertEqual(get(self.port, "/example.com/greet/@v/v1.2.0.zip").status, 200)
        # Big (8 MiB and a bit) stays alone over the limit (the entry just
        # stored is never the victim), and goes when the next one arrives.
        self.daemon.wait_for_log(r"cache: evicted mod/example.com/!big/@v/v1.0.0.zip")
        metrics = scrape_metrics(admin_port(self.daemon))
        self.assertEqual(metrics["switchyard_cache_evictions_total"], 1.0)
        self.assertEqual(get(self.port, small).status, 200)
        self.assertEqual(self.origin.count(small), 1)
        self.assertEqual(get(self.port, big).status, 200)
        self.assertEqual(self.origin.count(big), 2)

    def test_leak_guard_and_endpoints(self):
        self.start(env_extra="  GOSUMDB: \"sum.golang.org\"\n")
        os.makedirs(os.path.join(self.tree, "sumdb", "sum.golang.org", "lookup",
                                 "example.com"), exist_ok=True)
        with open(os.path.join(self.tree, "sumdb", "sum.golang.org", "lookup", "example.com",
                               "hello@v1.0.0"), "w") as f:
            f.write("123\nexample.com/hello v1.0.0 h1:abc=\n")
        cases = [
            # (path, status, origin path that must (not) be asked)
            ("/git.company.com/secret/@v/list", 404, None),
            ("/git.company.com/secret/@v/v1.0.0.zip", 404, None),
            ("/sumdb/sum.golang.org/supported", 200, None),
            ("/sumdb/other.example/supported", 404, None),
            ("/sumdb/sum.golang.org/lookup/example.com/hello@v1.0.0", 200,
             "/sumdb/sum.golang.org/lookup/example.com/hello@v1.0.0"),
            ("/example.com/nothere/@v/list", 404, "/example.com/nothere/@v/list"),
            ("/not/a/module", 404, None),
            ("/example.com/x/@v/v1.0.0.zip?query=1", 404, None),
        ]
        for path, status, asked in cases:
            with self.subTest(path=path):
                reply = get(self.port, path)
                self.assertEqual(reply.status, status, reply.body[:200])
                if asked:
                    self.assertEqual(self.origin.count(asked), 1)
        self.assertFalse(any("git.company.com" in p for p in self.origin.requests))
        line = self.daemon.wait_for_decision(
            lambda x: x.get("target") == "/git.company.com/secret/@v/list")[0]
        self.assertIn("GONOPROXY", line["proxy_status"])
        self.assertEqual(line["module"], "git.company.com/secret")
        reply = get(self.port, "/example.com/hello/@v/list", headers="X: y\r\n")
        self.assertEqual(reply.status, 200)
        for method in ("POST", "PUT", "DELETE"):
            with socket.create_connection(("127.0.0.1", self.port), timeout=10) as s:
                s.sendall(("%s /example.com/hello/@v/list HTTP/1.1\r\nHost: x\r\n"
                           "Content-Length: 0\r\n\r\n" % method).encode())
                self.assertEqual(read_reply(s).status, 405)


def write_app(app):
    os.makedirs(app)
    with open(os.path.join(app, "go.mod"), "w") as f:
        f.write("module example.com/app\n\ngo 1.18\n\nrequire (\n"
                "\texample.com/greet v1.2.0\n\texample.com/hello v1.0.0\n)\n")
    with open(os.path.join(app, "main.go"), "w") as f:
        f.write("package main\n\nimport (\n\t\"fmt\"\n\n\t\"example.com/greet\"\n"
                "\t\"example.com/hello\"\n)\n\nfunc main() { fmt.Println(greet.Greet("
                "hello.Hello())) }\n")


@unittest.skipIf(GO is None, "go not installed (make test installs golang-go)")
class InterceptedCacheTest(unittest.TestCase):
    """The second door to the same cache: the go command keeps
    GOPROXY=https://proxy.golang.org and HTTPS_PROXY=switchyard; the rule
    intercepts, sends the requests to a loopback mirror and caches them."""

    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="sy-gpi-")
        t = self.tmp.name
        tree = os.path.join(t, "tree")
        write_module(tree, "example.com/hello", "v1.0.0", HELLO)
        write_module(tree, "example.com/greet", "v1.2.0", GREET)
        self.ca_dir = os.path.join(t, "ca")
        subprocess.run([BIN, "ca", "init", "--dir", self.ca_dir], check=True,
                       capture_output=True)
        os.makedirs(os.path.join(t, "mcert"))
        cert = make_cert(os.path.join(t, "mcert"), names=("mirror.test",))
        self.origin = GoproxyOrigin(tree, tls_cert=cert)
        config = proxy_config(
            "inherit_env: false\n"
            "tls: { ca_dir: \"%s\", upstream_ca_file: \"%s\" }\n"
            "resolve: { mirror.test: \"127.0.0.1\" }\n"
            "cache: { dir: \"%s\" }\n"
            "rules:\n"
            "  - name: goproxy\n"
            "    match: { hosts: \"proxy.golang.org\" }\n"
            "    action: mirror\n"
            "    mirrors: \"https://mirror.test:%d\"\n"
            "    intercept: true\n"
            "    cache: true\n"
            "  - name: nothing-else\n"
            "    match: { hosts: \"*\" }\n"
            "    action: deny\n"
            % (self.ca_dir, cert[0], os.path.join(t, "cache"), self.origin.port))
        self.d = Daemon(config=config)
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
            "GOPATH": os.path.join(t, "gopath"),
            "GOMODCACHE": os.path.join(t, "gopath", "pkg", "mod"),
            "GOCACHE": os.path.join(t, "gocache"),
            "GO111MODULE": "on",
            "GOTOOLCHAIN": "local",
            "CGO_ENABLED": "0",
        }

    def tearDown(self):
        self.d.stop()
        self.origin.close()
        self.tmp.cleanup()

    def go(self, *args, cwd):
        return subprocess.run([GO, *args], capture_output=True, text=True, env=self.env,
                              cwd=cwd, timeout=300)

    def test_build_then_again_from_cache_with_mirror_down(self):
        app = os.path.join(self.tmp.name, "app")
        write_app(app)
        r = self.go("build", "-mod=mod", "-o", "app", ".", cwd=app)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertEqual(self.origin.count("/example.com/hello/@v/v1.0.0.zip"), 1)
        self.origin.close()
        shutil.rmtree(os.path.join(self.tmp.name, "gopath"))
        os.remove(os.path.join(app, "app"))
        r = self.go("build", "-mod=mod", "-o", "app", ".", cwd=app)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        out = subprocess.run([os.path.join(app, "app")], capture_output=True, text=True)
        self.assertEqual(out.stdout, "hello, world\n")
        hits = self.d.wait_for_decision(
            lambda x: x.get("target", "").endswith("/example.com/hello/@v/v1.0.0.zip")
            and x["cache"] == "hit")
        self.assertEqual(hits[0]["rule"], "goproxy")
        self.assertEqual(hits[0]["status"], 200)
        denied = [x for x in self.d.decisions() if x.get("rule") == "nothing-else"]
        self.assertEqual(denied, [])


if __name__ == "__main__":
    unittest.main()
