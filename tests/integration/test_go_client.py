"""The real go command through an intercepting switchyard: GOPROXY names
proxy.golang.org, HTTPS_PROXY is switchyard, which decrypts the tunnel with
its own CA and serves every module request from a loopback mirror holding a
GOPROXY tree this test generates. A catch-all deny rule makes sure nothing
reaches the network."""
import functools
import http.server
import json
import os
import shutil
import ssl
import subprocess
import tempfile
import threading
import unittest
import zipfile

from harness import BIN, Daemon, make_cert, proxy_config

GO = shutil.which("go")


def write_module(tree, path, version, files):
    """One module version in GOPROXY layout: list, .info, .mod, .zip."""
    vdir = os.path.join(tree, path, "@v")
    os.makedirs(vdir, exist_ok=True)
    with open(os.path.join(vdir, "list"), "a") as f:
        f.write(version + "\n")
    with open(os.path.join(vdir, version + ".info"), "w") as f:
        json.dump({"Version": version, "Time": "2024-01-02T03:04:05Z"}, f)
    with open(os.path.join(vdir, version + ".mod"), "w") as f:
        f.write(files["go.mod"])
    with zipfile.ZipFile(os.path.join(vdir, version + ".zip"), "w") as z:
        for name, text in sorted(files.items()):
            z.writestr("%s@%s/%s" % (path, version, name), text)


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


class GoMirror:
    """An https static server of `tree`, recording request paths."""

    def __init__(self, tree, cert):
        paths = self.paths = []

        class Handler(_Quiet):
            def do_GET(self):
                paths.append(self.path)
                super().do_GET()

        handler = functools.partial(Handler, directory=tree)
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(*cert)
        self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@unittest.skipUnless(GO, "the go command is not installed")
class GoClientTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="sy-go-")
        t = self.tmp.name
        self.ca_dir = os.path.join(t, "ca")
        subprocess.run([BIN, "ca", "init", "--dir", self.ca_dir], check=True, capture_output=True)
        os.makedirs(os.path.join(t, "mcert"))
        cert = make_cert(os.path.join(t, "mcert"), names=("mirror.test",))
        tree = os.path.join(t, "tree")
        write_module(tree, "example.com/hello", "v1.0.0", {
            "go.mod": "module example.com/hello\n\ngo 1.18\n",
            "hello.go": "package hello\n\nfunc Hello() string { return \"hello\" }\n",
        })
        write_module(tree, "example.com/greet", "v1.2.0", {
            "go.mod": "module example.com/greet\n\ngo 1.18\n",
            "greet.go": "package greet\n\nfunc Greet(s string) string { return s + \", world\" }\n",
        })
        self.mirror = GoMirror(tree, cert)
        config = proxy_config(
            "tls: { ca_dir: \"%s\", upstream_ca_file: \"%s\" }\n"
            "resolve: { mirror.test: \"127.0.0.1\" }\n"
            "rules:\n"
            "  - name: goproxy\n"
            "    match: { hosts: \"proxy.golang.org\" }\n"
            "    action: mirror\n"
            "    mirrors: \"https://mirror.test:%d\"\n"
            "    intercept: true\n"
            "  - name: nothing-else\n"
            "    match: { hosts: \"*\" }\n"
            "    action: deny\n" % (self.ca_dir, cert[0], self.mirror.port))
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
        }

    def tearDown(self):
        self.d.stop()
        self.mirror.close()
        self.tmp.cleanup()

    def go(self, *args, cwd=None):
        return subprocess.run([GO, *args], capture_output=True, text=True, env=self.env,
                              cwd=cwd or self.tmp.name, timeout=300)

    def test_mod_download_and_build(self):
        r = self.go("mod", "download", "-json", "example.com/hello@v1.0.0")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        info = json.loads(r.stdout)
        self.assertEqual(info["Version"], "v1.0.0")
        self.assertTrue(os.path.isfile(os.path.join(info["Dir"], "hello.go")))
        self.assertIn("/example.com/hello/@v/v1.0.0.zip", self.mirror.paths)
        recs = self.d.wait_for_decision(lambda x: x.get("method") == "GET" and
                                        x["target"].endswith("v1.0.0.zip"))
        self.assertEqual(recs[0]["status"], 200)
        self.assertEqual(recs[0]["rule"], "goproxy")

        app = os.path.join(self.tmp.name, "app")
        os.makedirs(app)
        with open(os.path.join(app, "go.mod"), "w") as f:
            f.write("module example.com/app\n\ngo 1.18\n\nrequire (\n"
                    "\texample.com/greet v1.2.0\n\texample.com/hello v1.0.0\n)\n")
        with open(os.path.join(app, "main.go"), "w") as f:
            f.write("package main\n\nimport (\n\t\"fmt\"\n\n\t\"example.com/greet\"\n"
                    "\t\"example.com/hello\"\n)\n\nfunc main() { fmt.Println(greet.Greet("
                    "hello.Hello())) }\n")
        r = self.go("build", "-mod=mod", "-o", "app", ".", cwd=app)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        out = subprocess.run([os.path.join(app, "app")], capture_output=True, text=True)
        self.assertEqual(out.stdout, "hello, world\n")
        self.assertIn("/example.com/greet/@v/v1.2.0.zip", self.mirror.paths)
        # Nothing went anywhere but the mirror: no CONNECT was denied.
        denied = [x for x in self.d.decisions() if x.get("rule") == "nothing-else"]
        self.assertEqual(denied, [])


if __name__ == "__main__":
    unittest.main()
