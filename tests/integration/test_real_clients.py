"""Two more real clients users meet, through the real switchyard binary:

* apt: `apt-get update` and `apt-get download` from a flat Debian repository
  (real .deb files made by dpkg-deb, Packages and Release written here) on a
  loopback origin, with a private apt root so the system is untouched. apt
  pipelines its requests on one connection by default; a recording relay
  between apt and the daemon shows that it did (and that it did not with
  Pipeline-Depth 0).
* npm: `npm install` from a minimal loopback registry (packuments and
  tarballs built here), over http through the proxy and over https through a
  CONNECT tunnel, with an isolated cache and config.

Every case checks what the client got, what the origin saw and the decision
log; a deny rule for the origin's host makes each client fail with the deny
in the log and nothing at the origin."""
import base64
import email.utils
import gzip
import hashlib
import http.server
import io
import json
import os
import posixpath
import re
import shutil
import socket
import subprocess
import tarfile
import tempfile
import threading
import unittest
import urllib.parse

from harness import Daemon, TcpServer, ThreadedHttpServer, make_cert, proxy_config

APT_GET = shutil.which("apt-get")
DPKG_DEB = shutil.which("dpkg-deb")
NPM = shutil.which("npm")

# Deadline of one client run; each case takes a few seconds.
CLIENT_DEADLINE = 60

# What the origin says of every file; a request with If-Modified-Since equal
# to it gets 304.
LAST_MODIFIED = "Sat, 01 Aug 2026 10:00:00 GMT"

VIA = re.compile(r"^1\.1 switchyard \(127\.0\.0\.1:\d+\)$")


def client_env(home, **extra):
    """A client's environment: no proxy or npm settings inherited."""
    env = {k: v for k, v in os.environ.items()
           if k.lower() not in ("http_proxy", "https_proxy", "no_proxy", "all_proxy")
           and not k.lower().startswith("npm_config_") and k != "APT_CONFIG"}
    env["HOME"] = home
    env.update(extra)
    return env


def deny_rule(host):
    return ("rules:\n"
            "  - name: no-repo\n"
            "    match: { hosts: \"%s\" }\n"
            "    action: deny\n" % host)


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request, client_address):
        pass  # clients that go away midway (a failing npm) are part of the tests


class _StaticHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def setup(self):
        super().setup()
        # The head and the body are two writes: without TCP_NODELAY (which
        # nginx sets too) Nagle holds the body until the daemon's delayed
        # ACK, 40 ms a response on a reused upstream connection.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, *args):
        pass

    def do_HEAD(self):
        self.do_GET()

    def do_GET(self):
        o = self.server.origin
        path = urllib.parse.urlsplit(self.path).path
        # apt asks a flat repository for /./Release: the file is /Release.
        found = o.files.get(posixpath.normpath(path))
        status = 200 if found else 404
        ctype, body = found or ("text/plain", b"not found\n")
        if found and self.headers.get("If-Modified-Since") == LAST_MODIFIED:
            status = 304
        with o.lock:
            o.requests.append({"method": self.command, "path": self.path, "status": status,
                               "headers": {k.lower(): v for k, v in self.headers.items()},
                               "peer": self.client_address})
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        # A 304 may carry the Content-Length a 200 would have (RFC 9110
        # 8.6) and has no body all the same.
        self.send_header("Content-Length", str(len(body)))
        if found:
            self.send_header("Last-Modified", LAST_MODIFIED)
        if o.close_each:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if self.command != "HEAD" and status != 304:
            self.wfile.write(body)


class StaticOrigin(ThreadedHttpServer):
    """A loopback HTTP(S) origin in a thread answering GET/HEAD from `files`
    ({path: (content type, bytes)}, 404 for anything else) with keep-alive,
    recording every request (method, path, status, headers, client address).
    With `close_each` it closes the connection after every response."""

    def __init__(self, tls_cert=None):
        self.lock = threading.Lock()
        self.files = {}
        self.close_each = False
        self.requests = []
        server = _Server(("127.0.0.1", 0), _StaticHandler)
        server.origin = self
        self.serve(server, tls_cert)

    def seen(self):
        with self.lock:
            return list(self.requests)


class Relay:
    """A TCP relay from a loopback port to the daemon that records, per
    client connection, the order in which request bytes and response bytes
    passed: enough to tell whether the client pipelined."""

    def __init__(self, target_port):
        self.target_port = target_port
        self.lock = threading.Lock()
        self.conns = []  # per connection: list of ("c" | "s", bytes)
        self.server = TcpServer(self._handle)
        self.port = self.server.port

    def _handle(self, client):
        events = []
        with self.lock:
            self.conns.append(events)
        upstream = socket.create_connection(("127.0.0.1", self.target_port),
                                            timeout=CLIENT_DEADLINE)

        def pump(src, dst, tag):
            try:
                while True:
                    b = src.recv(65536)
                    if not b:
                        break
                    with self.lock:
                        events.append((tag, b))
                    dst.sendall(b)
                dst.shutdown(socket.SHUT_WR)
            except OSError:
                pass

        back = threading.Thread(target=pump, args=(upstream, client, "s"), daemon=True)
        back.start()
        pump(client, upstream, "c")
        back.join(CLIENT_DEADLINE)
        upstream.close()

    def max_requests_before_a_response(self):
        """The most request heads the client sent on one connection with no
        response byte coming back in between: 1 without pipelining."""
        best = 0
        with self.lock:
            for events in self.conns:
                run = 0
                for tag, data in events:
                    if tag == "s":
                        run = 0
                    else:
                        run += data.count(b"\r\n\r\n")
                        best = max(best, run)
        return best

    def requests(self):
        """(method, target) of every request line the client sent."""
        with self.lock:
            streams = [b"".join(data for tag, data in events if tag == "c")
                       for events in self.conns]
        return [(m.decode(), t.decode()) for stream in streams
                for m, t in re.findall(rb"(?m)^([A-Z]+) (\S+) HTTP/1\.1\r$", stream)]

    def close(self):
        self.server.close()


# --------------------------------------------------------------------------
# apt

# name, version, size of a file of random bytes it holds. sy-lost goes
# missing from the origin in one case; sy-world is large enough for its
# response to take many reads while apt's next requests wait in the daemon.
DEBS = [("sy-extra", "0.9", 1000), ("sy-hello", "1.0", 1000), ("sy-lost", "1.1", 1000),
        ("sy-world", "2.3-1", 4 << 20)]


def build_deb(workdir, name, version, size):
    """A real .deb made by dpkg-deb; returns its bytes."""
    root = os.path.join(workdir, "%s_%s" % (name, version))
    os.makedirs(os.path.join(root, "DEBIAN"))
    os.makedirs(os.path.join(root, "usr", "share", name))
    with open(os.path.join(root, "DEBIAN", "control"), "w") as f:
        f.write("Package: %s\nVersion: %s\nArchitecture: all\n"
                "Maintainer: Switchyard Tests <tests@example.invalid>\n"
                "Description: %s, a package of the switchyard tests\n"
                " It holds one file of random bytes.\n" % (name, version, name))
    with open(os.path.join(root, "usr", "share", name, "data"), "wb") as f:
        f.write(os.urandom(size))
    out = os.path.join(workdir, "%s_%s_all.deb" % (name, version))
    subprocess.run([DPKG_DEB, "-Zgzip", "--root-owner-group", "--build", root, out], check=True,
                   capture_output=True, timeout=CLIENT_DEADLINE)
    with open(out, "rb") as f:
        return f.read()


def flat_repository(debs):
    """{path: (content type, bytes)} of a flat repository (`deb URI ./`)
    holding `debs` ({(name, version): bytes})."""
    files = {}
    stanzas = []
    for (name, version), data in sorted(debs.items()):
        filename = "%s_%s_all.deb" % (name, version)
        files["/" + filename] = ("application/vnd.debian.binary-package", data)
        stanzas.append("Package: %s\nVersion: %s\nArchitecture: all\n"
                       "Maintainer: Switchyard Tests <tests@example.invalid>\n"
                       "Filename: ./%s\nSize: %d\nSHA256: %s\n"
                       "Description: %s, a package of the switchyard tests\n"
                       % (name, version, filename, len(data), hashlib.sha256(data).hexdigest(),
                          name))
    packages = "\n".join(stanzas).encode()
    indexes = [("Packages", packages), ("Packages.gz", gzip.compress(packages, mtime=0))]
    release = ("Origin: switchyard-tests\nLabel: switchyard-tests\nSuite: stable\n"
               "Codename: tests\nDate: %s\nArchitectures: all\nSHA256:\n"
               % email.utils.formatdate(usegmt=True))
    for name, data in indexes:
        release += " %s %d %s\n" % (hashlib.sha256(data).hexdigest(), len(data), name)
        files["/" + name] = ("application/octet-stream", data)
    files["/Release"] = ("text/plain", release.encode())
    return files


@unittest.skipUnless(APT_GET and DPKG_DEB, "apt-get or dpkg-deb is not installed")
class AptTest(unittest.TestCase):
    HOST = "repo.test"

    @classmethod
    def setUpClass(cls):
        cls.shared = tempfile.TemporaryDirectory(prefix="sy-apt-")
        debdir = os.path.join(cls.shared.name, "debs")
        os.makedirs(debdir)
        cls.debs = {(n, v): build_deb(debdir, n, v, size) for n, v, size in DEBS}
        cls.files = flat_repository(cls.debs)

    @classmethod
    def tearDownClass(cls):
        cls.shared.cleanup()

    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="sy-apt-case-")
        self.origin = StaticOrigin()
        self.origin.files.update(self.files)
        self.d = None
        self.relay = None

    def tearDown(self):
        if self.relay is not None:
            self.relay.close()
        if self.d is not None:
            self.assertEqual(self.d.stop(), 0)
        self.origin.close()
        self.tmp.cleanup()

    def start_daemon(self, rules=""):
        self.d = Daemon(config=proxy_config(
            extra='resolve: { "%s": "127.0.0.1" }\n%s' % (self.HOST, rules)))
        self.relay = Relay(self.d.port)

    def apt(self, *args, options=()):
        """Runs apt-get with a private root (config, sources, lists, cache,
        dpkg status), through the relay in front of the daemon."""
        t = self.tmp.name
        for sub in ("parts", "state", "cache", "out"):
            os.makedirs(os.path.join(t, sub), exist_ok=True)
        status = os.path.join(t, "status")
        open(status, "a").close()
        sources = os.path.join(t, "sources.list")
        with open(sources, "w") as f:
            f.write("deb [trusted=yes] http://%s:%d/ ./\n" % (self.HOST, self.origin.port))
        # APT_CONFIG is read first: with Dir::Etc::Parts and main pointing
        # elsewhere, nothing of /etc/apt (proxies, hooks) applies.
        conf = os.path.join(t, "apt.conf")
        with open(conf, "w") as f:
            for key, value in (("Dir::Etc::Parts", os.path.join(t, "parts")),
                               ("Dir::Etc::main", "/dev/null"),
                               ("Dir::Etc::SourceList", sources),
                               ("Dir::Etc::SourceParts", os.path.join(t, "parts")),
                               ("Dir::State", os.path.join(t, "state")),
                               ("Dir::Cache", os.path.join(t, "cache")),
                               ("Dir::State::status", status),
                               ("Debug::NoLocking", "1"),
                               ("APT::Sandbox::User", "root"),
                               ("Acquire::Languages", "none"),
                               ("Acquire::Retries", "0"),
                               ("Acquire::http::Timeout", "15")):
                f.write('%s "%s";\n' % (key, value))
        cmd = [APT_GET, "-q", "-o", "Acquire::http::Proxy=http://127.0.0.1:%d/" % self.relay.port]
        for o in options:
            cmd += ["-o", o]
        cmd += list(args)
        return subprocess.run(cmd, capture_output=True, text=True, cwd=os.path.join(t, "out"),
                              env=client_env(t, APT_CONFIG=conf), timeout=CLIENT_DEADLINE)

    def assert_one_decision_per_request(self, seen):
        """Each request the origin saw has exactly one decision line naming
        its URL, action direct, with the status the origin sent."""
        want = sorted(("GET", "http://%s:%d%s" % (self.HOST, self.origin.port, r["path"]),
                       r["status"]) for r in seen)
        self.d.wait_for_decision(lambda x: x.get("method") == "GET", count=len(want))
        recs = self.d.decisions()
        self.assertEqual(sorted((x["method"], x["target"], x["status"]) for x in recs), want,
                         recs)
        # ... and those were all the requests apt sent.
        self.assertEqual(sorted(self.relay.requests()), sorted(w[:2] for w in want))
        for x in recs:
            self.assertEqual(x["action"], "direct", x)
            self.assertEqual(x["resolved"], "127.0.0.1:%d" % self.origin.port, x)
        return recs

    def test_update_and_download(self):
        cases = [
            # name, extra apt options, the origin closes after each response,
            # sy-lost is missing, whether apt pipelines the downloads
            ("default-pipelining", (), False, False, True),
            ("pipeline-depth-0", ("Acquire::http::Pipeline-Depth=0",), False, False, False),
            ("origin-closes-each-time", (), True, False, True),
            ("404-amid-the-pipeline", (), False, True, True),
        ]
        for name, options, close_each, lost, pipelined in cases:
            with self.subTest(name):
                try:
                    self.run_update_and_download(options, close_each, lost, pipelined)
                finally:
                    self.tearDown()
                    self.setUp()

    def run_update_and_download(self, options, close_each, lost, pipelined):
        self.origin.close_each = close_each
        self.start_daemon()
        r = self.apt("update", options=options)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertNotIn("W:", r.stdout + r.stderr)
        paths = [x["path"] for x in self.origin.seen()]
        self.assertIn("/./Release", paths)
        self.assertIn("/./Packages.gz", paths)
        updated = len(paths)
        lost_path = "/./sy-lost_1.1_all.deb"
        if lost:
            del self.origin.files[posixpath.normpath(lost_path)]
        r = self.apt("download", *[n for n, _, _ in DEBS], options=options)
        if lost:
            self.assertEqual(r.returncode, 100, r.stdout + r.stderr)
            self.assertRegex(r.stdout + r.stderr,
                             r"E: Failed to fetch http://%s:%d/\./sy-lost_1\.1_all\.deb +404 "
                             % (re.escape(self.HOST), self.origin.port))
        else:
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        for (n, v), data in self.debs.items():
            path = os.path.join(self.tmp.name, "out", "%s_%s_all.deb" % (n, v))
            if lost and n == "sy-lost":
                self.assertFalse(os.path.exists(path))
                continue
            with open(path, "rb") as f:
                self.assertEqual(hashlib.sha256(f.read()).hexdigest(),
                                 hashlib.sha256(data).hexdigest(), n)
        seen = self.origin.seen()
        self.assertEqual(sorted(x["path"] for x in seen[updated:]),
                         sorted("/./%s_%s_all.deb" % nv for nv in self.debs))
        for x in seen:
            self.assertRegex(x["headers"].get("via", ""), VIA, x)
            missing = ("/./InRelease", "/./Release.gpg") + ((lost_path,) if lost else ())
            self.assertEqual(x["status"], 404 if x["path"] in missing else 200, x)
        if close_each:
            self.assertEqual(len({x["peer"] for x in seen}), len(seen))
        recs = self.assert_one_decision_per_request(seen)
        # apt kept its connection: the downloads all came on one client
        # connection, even when the origin closed after each response.
        debs = [x for x in recs if x["target"].endswith(".deb")]
        self.assertEqual(len({x["conn"] for x in debs}), 1, debs)
        self.assertEqual(self.relay.max_requests_before_a_response() > 1, pipelined,
                         self.relay.conns)

    def test_second_update_is_not_modified(self):
        """apt asks again with If-Modified-Since; the 304 (with a
        Content-Length and no body) passes and the connection goes on."""
        self.start_daemon()
        r = self.apt("update")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        first = len(self.origin.seen())
        r = self.apt("update")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertRegex(r.stdout, r"Hit:\d+ http://%s:%d \./ Release" % (re.escape(self.HOST),
                                                                           self.origin.port))
        seen = self.origin.seen()
        again = {x["path"]: x for x in seen[first:]}
        self.assertEqual(again["/./Release"]["status"], 304, seen)
        self.assertEqual(again["/./Release"]["headers"].get("if-modified-since"), LAST_MODIFIED)
        # Release.gpg comes after the 304 on the same client connection.
        self.assertIn("/./Release.gpg", again)
        recs = self.assert_one_decision_per_request(seen)
        second = [x for x in recs if x["conn"] == recs[-1]["conn"]]
        self.assertEqual(len(second), len(seen) - first, recs)
        r = self.apt("download", "sy-hello")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

    def test_deny_rule_for_the_repository(self):
        self.start_daemon(deny_rule(self.HOST))
        r = self.apt("update")
        out = r.stdout + r.stderr
        self.assertNotEqual(r.returncode, 0, out)
        self.assertRegex(out, r"E: Failed to fetch http://%s:%d/\./Packages +403 +Denied by rule "
                         r"no-repo" % (re.escape(self.HOST), self.origin.port))
        self.assertEqual(self.origin.seen(), [])
        # One deny line for each request apt sent.
        sent = self.relay.requests()
        self.assertIn(("GET", "http://%s:%d/./InRelease" % (self.HOST, self.origin.port)), sent)
        self.d.wait_for_decision(lambda x: x.get("method") == "GET", count=len(sent))
        recs = self.d.decisions()
        self.assertEqual(sorted((x["method"], x["target"]) for x in recs), sorted(sent))
        for x in recs:
            self.assertEqual((x["action"], x["status"], x["rule"]), ("deny", 403, "no-repo"), x)


# --------------------------------------------------------------------------
# npm

# name, version, dependencies
NPM_PACKAGES = [("sy-left", "1.0.0", {"sy-right": "^2.0.0"}), ("sy-right", "2.1.0", {})]


def npm_tarball(name, version, deps):
    """A package tarball as npm publishes it: gzip tar of package/..."""
    manifest = json.dumps({"name": name, "version": version, "main": "index.js",
                           "dependencies": deps}, indent=2).encode()
    index = ("module.exports = %s;\n" % json.dumps("%s@%s" % (name, version))).encode()
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        for path, data in (("package/package.json", manifest), ("package/index.js", index)):
            info = tarfile.TarInfo(path)
            info.size = len(data)
            info.mode = 0o644
            info.mtime = 1700000000
            tar.addfile(info, io.BytesIO(data))
    return gzip.compress(raw.getvalue(), mtime=0), manifest


def registry_files(base):
    """{path: (content type, bytes)} of a registry at `base` (no trailing
    slash) serving NPM_PACKAGES, and {name: package.json bytes}."""
    files = {}
    manifests = {}
    for name, version, deps in NPM_PACKAGES:
        tgz, manifests[name] = npm_tarball(name, version, deps)
        tar_path = "/%s/-/%s-%s.tgz" % (name, name, version)
        files[tar_path] = ("application/octet-stream", tgz)
        packument = {
            "name": name,
            "dist-tags": {"latest": version},
            "versions": {version: {
                "name": name, "version": version, "dependencies": deps,
                "dist": {"tarball": base + tar_path,
                         "integrity": "sha512-" + base64.b64encode(
                             hashlib.sha512(tgz).digest()).decode(),
                         "shasum": hashlib.sha1(tgz).hexdigest()}}},
        }
        files["/" + name] = ("application/json", json.dumps(packument).encode())
    return files, manifests


@unittest.skipUnless(NPM, "npm is not installed")
class NpmTest(unittest.TestCase):
    HOST = "registry.test"

    @classmethod
    def setUpClass(cls):
        cls.shared = tempfile.TemporaryDirectory(prefix="sy-npm-")
        os.makedirs(os.path.join(cls.shared.name, "cert"))
        cls.cert = make_cert(os.path.join(cls.shared.name, "cert"), names=(cls.HOST,))

    @classmethod
    def tearDownClass(cls):
        cls.shared.cleanup()

    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="sy-npm-case-")
        self.origin = None
        self.d = None

    def tearDown(self):
        if self.d is not None:
            self.assertEqual(self.d.stop(), 0)
            self.d = None
        if self.origin is not None:
            self.origin.close()
            self.origin = None
        self.tmp.cleanup()

    def start(self, scheme, rules=""):
        self.origin = StaticOrigin(tls_cert=self.cert if scheme == "https" else None)
        self.base = "%s://%s:%d" % (scheme, self.HOST, self.origin.port)
        files, self.manifests = registry_files(self.base)
        self.origin.files.update(files)
        self.d = Daemon(config=proxy_config(
            connect_ports=(self.origin.port,),
            extra='resolve: { "%s": "127.0.0.1" }\n%s' % (self.HOST, rules)))

    def npm_install(self, name):
        t = self.tmp.name
        project = os.path.join(t, "project")
        os.makedirs(project)
        with open(os.path.join(project, "package.json"), "w") as f:
            json.dump({"name": "sy-app", "version": "1.0.0", "private": True}, f)
        userconfig, globalconfig = os.path.join(t, "npmrc"), os.path.join(t, "global-npmrc")
        for path in (userconfig, globalconfig):
            open(path, "w").close()
        proxy = self.d.proxy_url + "/"
        cmd = [NPM, "install", name, "--registry", self.base + "/", "--proxy", proxy,
               "--https-proxy", proxy, "--noproxy", "", "--cache", os.path.join(t, "cache"),
               "--userconfig", userconfig, "--globalconfig", globalconfig, "--cafile", self.cert[0],
               "--no-audit", "--no-fund", "--no-update-notifier", "--fetch-retries", "0",
               "--fetch-timeout", "15000", "--loglevel", "http"]
        r = subprocess.run(cmd, capture_output=True, text=True, cwd=project,
                           env=client_env(t), timeout=CLIENT_DEADLINE)
        return r, project

    def assert_installed(self, r, project):
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        for name, _, _ in NPM_PACKAGES:
            with open(os.path.join(project, "node_modules", name, "package.json"), "rb") as f:
                self.assertEqual(json.load(f), json.loads(self.manifests[name]), name)
        out = subprocess.run(["node", "-e", "console.log(require('sy-left'))"], cwd=project,
                             capture_output=True, text=True, timeout=CLIENT_DEADLINE)
        self.assertEqual(out.stdout, "sy-left@1.0.0\n", out.stderr)
        paths = sorted(x["path"] for x in self.origin.seen())
        self.assertEqual(paths, sorted(self.origin.files), self.origin.seen())

    def test_install(self):
        for scheme in ("http", "https"):
            with self.subTest(scheme):
                try:
                    self.start(scheme)
                    r, project = self.npm_install("sy-left")
                    self.assert_installed(r, project)
                    if scheme == "http":
                        self.assert_forwarded()
                    else:
                        self.assert_tunnelled()
                finally:
                    self.tearDown()
                    self.setUp()

    def assert_forwarded(self):
        seen = self.origin.seen()
        for x in seen:
            self.assertRegex(x["headers"].get("via", ""), VIA, x)
        want = sorted(("GET", self.base + x["path"], 200) for x in seen)
        self.d.wait_for_decision(lambda x: x.get("method") == "GET", count=len(want))
        recs = self.d.decisions()
        self.assertEqual(sorted((x["method"], x["target"], x["status"]) for x in recs), want, recs)
        for x in recs:
            self.assertEqual(x["action"], "direct", x)
        # npm's keep-alive agent asked for sy-right (a dependency it learnt
        # of from the first answer) on the connection of sy-left's request.
        conn = {x["target"]: x["conn"] for x in recs}
        self.assertEqual(conn[self.base + "/sy-left"], conn[self.base + "/sy-right"], recs)

    def assert_tunnelled(self):
        seen = self.origin.seen()
        for x in seen:
            self.assertNotIn("via", x["headers"], x)  # the daemon did not see inside
        target = "%s:%d" % (self.HOST, self.origin.port)
        # One tunnel per connection the origin saw. Their lines come when
        # they close: npm's keep-alive agent holds them open until npm
        # exits, which it has.
        tunnels = len({x["peer"] for x in seen})
        self.d.wait_for_decision(lambda x: x.get("method") == "CONNECT", count=tunnels)
        recs = self.d.decisions()
        self.assertEqual(len(recs), tunnels, recs)
        for x in recs:
            self.assertEqual((x["method"], x["target"], x["status"], x["action"]),
                             ("CONNECT", target, 200, "direct"), x)
            self.assertGreater(x["bytes_in"], 0, x)
            self.assertGreater(x["bytes_out"], 0, x)
        # The agent reused its tunnels: the packuments come one after the
        # other (sy-right is learnt of from sy-left's), on one tunnel.
        self.assertLess(len(recs), len(seen), (recs, seen))
        peer = {x["path"]: x["peer"] for x in seen}
        self.assertEqual(peer["/sy-left"], peer["/sy-right"], seen)

    def test_deny_rule_for_the_registry(self):
        for scheme, method in (("http", "GET"), ("https", "CONNECT")):
            with self.subTest(scheme):
                try:
                    self.start(scheme, deny_rule(self.HOST))
                    r, project = self.npm_install("sy-left")
                    self.assertNotEqual(r.returncode, 0, r.stdout + r.stderr)
                    # npm names the proxy's reason, for a refused CONNECT too.
                    self.assertIn("npm error 403 403 Denied by rule no-repo - GET %s/sy-left\n"
                                  % self.base, r.stderr)
                    self.assertFalse(os.path.exists(os.path.join(project, "node_modules",
                                                                 "sy-left")))
                    self.assertEqual(self.origin.seen(), [])
                    recs = self.d.wait_for_decision(lambda x: x.get("method") == method)
                    for x in self.d.decisions():
                        self.assertEqual((x["method"], x["action"], x["status"], x["rule"]),
                                         (method, "deny", 403, "no-repo"), x)
                    self.assertTrue(recs)
                finally:
                    self.tearDown()
                    self.setUp()


if __name__ == "__main__":
    unittest.main()
