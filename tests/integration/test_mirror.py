"""Action mirror for absolute-form http requests: the walk along the rule's
GOPROXY-syntax list with go's fall-back (',' after 404/410 only, '|' after
any error), the re-framing of what the serving mirror sends, and the
decision log's attempts."""
import http.server
import os
import subprocess
import tempfile
import unittest

from harness import (BIN, Daemon, Origin, ThreadedHttpServer, curl, free_port, proxy_config,
                     raw_exchange)


class _NotFoundHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_GET(self):
        self.server.paths.append(self.path)
        body = b"not here\n"
        self.send_response(404)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_HEAD = do_GET


class NotFoundMirror(ThreadedHttpServer):
    """A mirror that has nothing: 404 for every path."""

    def __init__(self):
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _NotFoundHandler)
        server.daemon_threads = True
        server.paths = []
        self.serve(server)

    @property
    def base(self):
        return "http://127.0.0.1:%d" % self.port


_CA_DIR = tempfile.TemporaryDirectory(prefix="sy-mirror-ca-")
subprocess.run([BIN, "ca", "init", "--dir", os.path.join(_CA_DIR.name, "ca")], check=True,
               capture_output=True)


def mirror_config(mirrors):
    # A mirror rule that names hosts also sees CONNECT tunnels, so it must
    # intercept them, which needs a CA; plain http requests never use it.
    return proxy_config(
        "tls: { ca_dir: \"%s\" }\n" % os.path.join(_CA_DIR.name, "ca") +
        "rules:\n"
        "  - name: go-mirror\n"
        "    match: { hosts: \"origin.test\" }\n"
        "    action: mirror\n"
        "    mirrors: \"%s\"\n"
        "    intercept: true\n"
        "  - name: nothing-else\n"
        "    match: { hosts: \"*\" }\n"
        "    action: deny\n" % mirrors)


class MirrorTest(unittest.TestCase):
    def setUp(self):
        self.missing = NotFoundMirror()
        self.missing2 = NotFoundMirror()
        self.serving = Origin()
        self.dead = "http://127.0.0.1:%d" % free_port()

    def tearDown(self):
        self.missing.close()
        self.missing2.close()
        self.serving.close()

    def serving_base(self):
        return "http://127.0.0.1:%d" % self.serving.port

    def run_case(self, mirrors, path):
        d = Daemon(config=mirror_config(mirrors))
        try:
            r = curl("-i", "http://origin.test" + path, proxy=d.proxy_url)
            rec = d.wait_for_decision(lambda r: r.get("target", "").endswith(path))[0]
        finally:
            d.stop()
        return r, rec

    def test_comma_falls_through_after_404(self):
        r, rec = self.run_case(self.missing.base + "," + self.serving_base(), "/mod/@v/list")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("HTTP/1.1 200", r.stdout)
        self.assertIn("hello /mod/@v/list", r.stdout)
        self.assertEqual(self.missing.server.paths, ["/mod/@v/list"])
        self.assertEqual(rec["status"], 200)
        self.assertEqual(rec["action"], "mirror")
        self.assertEqual(rec["rule"], "go-mirror")
        self.assertEqual(len(rec["attempts"]), 2)
        self.assertEqual(rec["attempts"][0]["status"], 404)
        self.assertIn("fell through", rec["attempts"][0]["next"])
        self.assertEqual(rec["attempts"][1]["status"], 200)
        self.assertEqual(rec["attempts"][1]["next"], "served")

    def test_pipe_falls_through_after_refused(self):
        r, rec = self.run_case(self.dead + "|" + self.serving_base(), "/x/@v/v1.0.0.info")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("HTTP/1.1 200", r.stdout)
        self.assertIn("hello /x/@v/v1.0.0.info", r.stdout)
        self.assertEqual(len(rec["attempts"]), 2)
        self.assertIsNotNone(rec["attempts"][0]["error"])
        self.assertEqual(rec["attempts"][1]["next"], "served")

    def test_comma_stops_after_refused(self):
        r, rec = self.run_case(self.dead + "," + self.serving_base(), "/x/@v/list")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("HTTP/1.1 502", r.stdout)
        self.assertIn(self.dead, r.stdout)  # the body lists the attempts
        self.assertIn("Proxy-Status: switchyard; error=connection_refused", r.stdout)
        self.assertEqual(self.serving.requests, [])
        self.assertEqual(rec["status"], 502)
        self.assertIsNotNone(rec["attempts"][0]["error"])
        self.assertEqual(rec["attempts"][0]["url"], self.dead + "/x/@v/list")

    def test_final_404_stays_404(self):
        r, rec = self.run_case(self.missing.base + "," + self.missing2.base, "/gone/@v/list")
        self.assertIn("HTTP/1.1 404", r.stdout)
        self.assertIn("destination_not_found", r.stdout)
        self.assertEqual(rec["status"], 404)
        self.assertEqual([a["status"] for a in rec["attempts"]], [404, 404])

    def test_chunked_and_close_delimited_reframing(self):
        d = Daemon(config=mirror_config(self.serving_base()))
        try:
            # HTTP/1.1: a chunked mirror response stays chunked, keep-alive.
            r = curl("-s", "-w", "%{size_download}",
                     "-o", "/dev/null", "http://origin.test/chunked?size=300000",
                     "-o", "/dev/null", "http://origin.test/big?size=1000", proxy=d.proxy_url)
            self.assertEqual(r.stdout, "3000001000")
            # HTTP/1.0: an unknown length is delimited by our close.
            out = raw_exchange(d.port, b"GET http://origin.test/until-close?size=5000 HTTP/1.0"
                                       b"\r\n\r\n")
            head, _, body = out.partition(b"\r\n\r\n")
            self.assertIn(b"HTTP/1.1 200", head)
            self.assertNotIn(b"Transfer-Encoding", head)
            self.assertIn(b"Connection: close", head)
            self.assertEqual(len(body), 5000)
            recs = d.wait_for_decision(lambda r: r.get("rule") == "go-mirror", count=3)
            self.assertTrue(all(r["status"] == 200 for r in recs))
        finally:
            d.stop()

    def test_head_and_unsupported_methods(self):
        d = Daemon(config=mirror_config(self.serving_base()))
        try:
            r = curl("-I", "http://origin.test/big?size=1234", proxy=d.proxy_url)
            self.assertIn("HTTP/1.1 200", r.stdout)
            self.assertIn("Content-Length: 1234", r.stdout)
            r = curl("-i", "-d", "x=1", "http://origin.test/post", proxy=d.proxy_url)
            self.assertIn("HTTP/1.1 501", r.stdout)
            recs = d.wait_for_decision(lambda r: r.get("rule") == "go-mirror", count=2)
            self.assertEqual(sorted(r["status"] for r in recs), [200, 501])
        finally:
            d.stop()


if __name__ == "__main__":
    unittest.main()
