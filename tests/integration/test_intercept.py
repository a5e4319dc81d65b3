"""Interception of CONNECT tunnels (`intercept: true`): switchyard presents a
leaf of its own CA for the CONNECT host, reads the inner requests and sends
each along the rule's mirrors over verified TLS. Hosts without intercept
stay opaque tunnels. Everything runs on loopback: the mirror is an https
origin named mirror.test through `resolve:`."""
import os
import re
import socket
import ssl
import tempfile
import threading
import unittest

from harness import (Daemon, Origin, curl, interception_setup, make_cert, proxy_config,
                     recv_until)


class InterceptTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="sy-intercept-")
        cls.ca_dir, cls.ca_crt, cls.mirror_cert = interception_setup(
            cls.tmp.name, ("mirror.test", "direct.test"))
        odir = os.path.join(cls.tmp.name, "plain")
        os.makedirs(odir)
        cls.plain_cert = make_cert(odir, names=("plain.test",))

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def setUp(self):
        self.mirror = Origin(tls_cert=self.mirror_cert)
        self.plain = Origin(tls_cert=self.plain_cert)
        config = proxy_config(
            "tls: { ca_dir: \"%s\", upstream_ca_file: \"%s\" }\n"
            "resolve: { mirror.test: \"127.0.0.1\", plain.test: \"127.0.0.1\",\n"
            "           direct.test: \"127.0.0.1\" }\n"
            "rules:\n"
            "  - name: goproxy\n"
            "    match: { hosts: \"proxy.golang.org\" }\n"
            "    action: mirror\n"
            "    mirrors: \"https://mirror.test:%d\"\n"
            "    intercept: true\n"
            "  - name: origin-itself\n"
            "    match: { hosts: \"direct.test\" }\n"
            "    action: direct\n"
            "    intercept: true\n"
            "    allow_private: true\n"
            "  - name: plain\n"
            "    match: { hosts: \"plain.test\" }\n"
            "    action: direct\n"
            "    allow_private: true\n"
            "  - name: nothing-else\n"
            "    match: { hosts: \"*\" }\n"
            "    action: deny\n" % (self.ca_dir, self.mirror_cert[0], self.mirror.port),
            connect_ports=(443, self.plain.port, self.mirror.port))
        self.d = Daemon(config=config)

    def tearDown(self):
        self.d.stop()
        self.mirror.close()
        self.plain.close()

    def fetch(self, url, *extra):
        return curl("-i", "--cacert", self.ca_crt, *extra, url, proxy=self.d.proxy_url)

    def test_inner_request_served_by_mirror(self):
        r = self.fetch("https://proxy.golang.org/some/path")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("HTTP/1.1 200", r.stdout)
        self.assertIn("hello /some/path", r.stdout)
        self.assertEqual([q["path"] for q in self.mirror.requests], ["/some/path"])
        inner = self.d.wait_for_decision(lambda r: r.get("method") == "GET")[0]
        self.assertEqual(inner["rule"], "goproxy")
        self.assertEqual(inner["status"], 200)
        self.assertTrue(inner["target"].endswith("/some/path"))
        self.assertEqual(inner["attempts"][0]["next"], "served")
        outer = self.d.wait_for_decision(lambda r: r.get("method") == "CONNECT")[0]
        self.assertEqual(outer["status"], 200)
        self.assertEqual(outer["host"], "proxy.golang.org")

    def test_keep_alive_across_inner_requests(self):
        r = curl("-s", "--cacert", self.ca_crt, "-w", "%{size_download} %{num_connects} ",
                 "-o", "/dev/null", "https://proxy.golang.org/a",
                 "-o", "/dev/null", "https://proxy.golang.org/chunked?size=200000",
                 proxy=self.d.proxy_url)
        self.assertEqual(r.returncode, 0, r.stderr)
        # The second request reused the first one's connection (and tunnel).
        self.assertEqual(r.stdout, "9 1 200000 0 ")
        inner = self.d.wait_for_decision(lambda r: r.get("method") == "GET", count=2)
        self.assertEqual([i["status"] for i in inner], [200, 200])
        self.d.wait_for_decision(lambda r: r.get("method") == "CONNECT")
        self.assertEqual(len([q for q in self.d.decisions() if q.get("method") == "CONNECT"]), 1)

    def test_mirror_tls_connection_is_reused_across_inner_requests(self):
        # Each inner request is its own fetch, but an idle TLS connection to
        # the same mirror is kept and reused: five requests, one handshake.
        urls = ["https://proxy.golang.org/r%d" % i for i in range(5)]
        args = ["-s", "--cacert", self.ca_crt]
        for u in urls:
            args += ["-o", "/dev/null", u]
        r = curl(*args, proxy=self.d.proxy_url)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual([q["path"] for q in self.mirror.requests], ["/r%d" % i for i in range(5)])
        self.assertEqual(len(self.mirror.connections), 1, self.mirror.connections)
        recs = self.d.wait_for_decision(lambda x: x.get("method") == "GET", count=5)
        self.assertEqual([x["status"] for x in recs], [200] * 5)

    def test_pooled_connection_closed_by_the_mirror_is_replaced(self):
        # A mirror that drops a kept-alive connection when the next request
        # arrives (its idle timer fired just then): the request goes again on
        # a fresh connection instead of failing.
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(*self.mirror_cert)
        listener = socket.create_server(("127.0.0.1", 0))
        port = listener.getsockname()[1]
        accepted = []

        def serve():
            while True:
                try:
                    raw, _ = listener.accept()
                except OSError:
                    return
                accepted.append(raw)
                try:
                    conn = ctx.wrap_socket(raw, server_side=True)
                    recv_until(conn, b"\r\n\r\n")
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n")
                    recv_until(conn, b"\r\n\r\n")  # the second request: dropped
                    conn.close()
                except (OSError, AssertionError):
                    pass

        threading.Thread(target=serve, daemon=True).start()
        config = proxy_config(
            "tls: { ca_dir: \"%s\", upstream_ca_file: \"%s\" }\n"
            "resolve: { mirror.test: \"127.0.0.1\" }\n"
            "rules:\n"
            "  - name: goproxy\n"
            "    match: { hosts: \"proxy.golang.org\" }\n"
            "    action: mirror\n"
            "    mirrors: \"https://mirror.test:%d\"\n"
            "    intercept: true\n" % (self.ca_dir, self.mirror_cert[0], port))
        d = Daemon(config=config)
        try:
            for i in range(3):
                r = curl("-s", "--cacert", self.ca_crt, "https://proxy.golang.org/x%d" % i,
                         proxy=d.proxy_url)
                self.assertEqual((r.returncode, r.stdout), (0, "ok\n"), r.stderr)
            recs = d.wait_for_decision(lambda x: x.get("method") == "GET", count=3)
            self.assertEqual([x["status"] for x in recs], [200] * 3)
            self.assertEqual([len(x["attempts"]) for x in recs], [1, 1, 1])
            self.assertEqual(len(accepted), 3)  # each later request needed a fresh one
        finally:
            d.stop()
            listener.close()

    def test_direct_goes_to_the_origin_over_verified_tls(self):
        r = self.fetch("https://direct.test:%d/from/origin?q=1" % self.mirror.port)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("HTTP/1.1 200", r.stdout)
        self.assertIn("hello /from/origin?q=1", r.stdout)
        inner = self.d.wait_for_decision(lambda r: r.get("method") == "GET")[0]
        self.assertEqual(inner["rule"], "origin-itself")
        self.assertEqual(inner["next_hop"], "direct")
        self.assertEqual(inner["resolved"], "127.0.0.1:%d" % self.mirror.port)

    def tls_through_proxy(self, host="proxy.golang.org"):
        s = socket.create_connection(("127.0.0.1", self.d.port), timeout=10)
        s.sendall(b"CONNECT %s:443 HTTP/1.1\r\nHost: %s:443\r\n\r\n" % (host.encode(),
                                                                          host.encode()))
        head = recv_until(s, b"\r\n\r\n")
        self.assertTrue(head.startswith(b"HTTP/1.1 200"), head)
        ctx = ssl.create_default_context(cafile=self.ca_crt)
        return ctx.wrap_socket(s, server_hostname=host)

    def read_response(self, t):
        """One response with Content-Length from the TLS socket."""
        data = b""
        while b"\r\n\r\n" not in data:
            data += t.recv(65536)
        head, _, rest = data.partition(b"\r\n\r\n")
        length = int(re.search(rb"Content-Length: (\d+)", head).group(1))
        while len(rest) < length:
            rest += t.recv(65536)
        return head, rest[:length], rest[length:]

    def test_pipelined_then_refused_inner_requests(self):
        t = self.tls_through_proxy()
        try:
            t.sendall(b"GET /one HTTP/1.1\r\nHost: proxy.golang.org\r\n\r\n"
                      b"HEAD /two HTTP/1.1\r\nHost: proxy.golang.org:443\r\n\r\n")
            head, body, rest = self.read_response(t)
            self.assertIn(b"200", head.split(b"\r\n")[0])
            self.assertEqual(body, b"hello /one\n")
            while b"\r\n\r\n" not in rest:
                rest += t.recv(65536)
            self.assertTrue(rest.startswith(b"HTTP/1.1 200"), rest)
            self.assertIn(b"Content-Length: 11", rest)  # HEAD: length, no body
            t.sendall(b"POST /three HTTP/1.1\r\nHost: proxy.golang.org\r\n"
                      b"Content-Length: 3\r\n\r\nabc")
            head, _, _ = self.read_response(t)
            self.assertTrue(head.startswith(b"HTTP/1.1 501"), head)
        finally:
            t.close()
        recs = self.d.wait_for_decision(lambda r: r.get("method") in ("GET", "HEAD", "POST"),
                                        count=3)
        self.assertEqual([r["status"] for r in recs], [200, 200, 501])

    def test_oversized_inner_head_is_431(self):
        t = self.tls_through_proxy()
        try:
            t.sendall(b"GET /x HTTP/1.1\r\nHost: proxy.golang.org\r\nX-Big: " + b"a" * 70000)
            head, _, _ = self.read_response(t)
            self.assertTrue(head.startswith(b"HTTP/1.1 431"), head)
        finally:
            t.close()

    def test_misdirected_host_is_421(self):
        r = self.fetch("https://proxy.golang.org/x", "-H", "Host: other.test")
        self.assertIn("HTTP/1.1 421", r.stdout)
        self.assertEqual(self.mirror.requests, [])
        inner = self.d.wait_for_decision(lambda r: r.get("method") == "GET")[0]
        self.assertEqual(inner["status"], 421)

    def test_mirror_404_stays_404(self):
        r = self.fetch("https://proxy.golang.org/status?code=404")
        self.assertIn("HTTP/1.1 404", r.stdout)

    def test_host_without_intercept_is_tunnelled(self):
        url = "https://plain.test:%d/opaque" % self.plain.port
        # Our CA does not make it work: the origin's own certificate arrives.
        r = curl("-sS", "--cacert", self.ca_crt, url, proxy=self.d.proxy_url)
        self.assertNotEqual(r.returncode, 0)
        r = curl("-sS", "--cacert", self.plain_cert[0], url, proxy=self.d.proxy_url)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, "hello /opaque\n")
        recs = self.d.wait_for_decision(lambda r: r.get("rule") == "plain", count=2)
        self.assertTrue(all(x["method"] == "CONNECT" for x in recs))

    def test_other_hosts_denied(self):
        r = self.fetch("https://elsewhere.test/")
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("403", r.stdout)


class InterceptClientSideTest(unittest.TestCase):
    """The client side of an intercepted tunnel: inner heads are read by
    llhttp with the same strictness as the proxy's own door, and a client
    that stalls is cut off by limits.header_timeout / idle_timeout."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="sy-intercept-limits-")
        cls.ca_dir, cls.ca_crt, cls.mirror_cert = interception_setup(cls.tmp.name)
        cls.mirror = Origin(tls_cert=cls.mirror_cert)
        config = proxy_config(
            "tls: { ca_dir: \"%s\", upstream_ca_file: \"%s\" }\n"
            "resolve: { mirror.test: \"127.0.0.1\" }\n"
            "rules:\n"
            "  - name: goproxy\n"
            "    match: { hosts: \"proxy.golang.org\" }\n"
            "    action: mirror\n"
            "    mirrors: \"https://mirror.test:%d\"\n"
            "    intercept: true\n" % (cls.ca_dir, cls.mirror_cert[0], cls.mirror.port),
            limits={"header_timeout": "1s", "idle_timeout": "2s"})
        cls.d = Daemon(config=config)

    @classmethod
    def tearDownClass(cls):
        cls.d.stop()
        cls.mirror.close()
        cls.tmp.cleanup()

    def connect(self):
        s = socket.create_connection(("127.0.0.1", self.d.port), timeout=10)
        self.client = "127.0.0.1:%d" % s.getsockname()[1]
        s.sendall(b"CONNECT proxy.golang.org:443 HTTP/1.1\r\nHost: proxy.golang.org:443\r\n\r\n")
        head = recv_until(s, b"\r\n\r\n")
        self.assertTrue(head.startswith(b"HTTP/1.1 200"), head)
        return s

    def tls(self):
        ctx = ssl.create_default_context(cafile=self.ca_crt)
        return ctx.wrap_socket(self.connect(), server_hostname="proxy.golang.org")

    def connect_record(self):
        """The CONNECT line of the last connect()'s tunnel."""
        client = self.client
        return self.d.wait_for_decision(
            lambda r: r.get("method") == "CONNECT" and r.get("client") == client)[0]

    def read_all(self, s):
        data = b""
        while True:
            try:
                chunk = s.recv(65536)
            except (ConnectionResetError, ssl.SSLError):
                break
            if not chunk:
                break
            data += chunk
        return data

    def test_malformed_inner_heads_are_refused_and_closed(self):
        table = [
            # (request bytes, status) — RFC 9112 / 9110 as the proxy's own door reads them
            (b"GET / HTTP/1.1\nHost: proxy.golang.org\n\n", 400),             # bare LF
            (b"GET / HTTP/1.1\r\nHost : proxy.golang.org\r\n\r\n", 400),     # space before colon
            (b"GET / HTTP/1.1\r\nHost: proxy.golang.org\r\nX: a\x00b\r\n\r\n", 400),  # NUL
            (b"GET / HTTP/1.1\r\nHost: proxy.golang.org\r\nX: a\rb\r\n\r\n", 400),  # bare CR
            (b"GET / HTTP/1.x\r\nHost: proxy.golang.org\r\n\r\n", 400),        # version
            (b"GET / HTTP/2.0\r\nHost: proxy.golang.org\r\n\r\n", 505),
            (b"GET\t/ HTTP/1.1\r\nHost: proxy.golang.org\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: proxy.golang.org\r\nContent-Length: 1\r\n"
             b"Content-Length: 2\r\n\r\n", 400),                                  # duplicate CL
            (b"GET / HTTP/1.1\r\nHost: proxy.golang.org\r\nTransfer-Encoding: chunked\r\n"
             b"Content-Length: 3\r\n\r\n", 400),                                  # TE + CL
            (b"GET / HTTP/1.1\r\n" + b"".join(b"X%d: 1\r\n" % i for i in range(300))
             + b"Host: proxy.golang.org\r\n\r\n", 431),                          # field count
            (b"GET / HTTP/1.1\r\nHost: proxy.golang.org\r\nX: " + b"a" * 70000
             + b"\r\n\r\n", 431),                                                  # head size
        ]
        before = len(self.mirror.requests)
        for raw, status in table:
            with self.subTest(raw=raw[:60]):
                t = self.tls()
                try:
                    t.sendall(raw)
                    answer = self.read_all(t)  # the session closes after answering
                finally:
                    t.close()
                self.assertTrue(answer.startswith(b"HTTP/1.1 %d " % status), answer[:200])
                self.assertIn(b"Proxy-Status: ", answer)
                client = self.client
                rec = self.d.wait_for_decision(
                    lambda r: r.get("client") == client and r.get("method") != "CONNECT")[0]
                self.assertEqual(rec["status"], status)
                self.assertEqual(self.connect_record()["closed_by"], "proxy")
        self.assertEqual(len(self.mirror.requests), before)  # none reached the mirror

    def test_client_silent_after_connect_is_cut_off(self):
        s = self.connect()
        try:
            self.assertEqual(self.read_all(s), b"")  # no ClientHello: closed, no answer
        finally:
            s.close()
        rec = self.connect_record()
        self.assertEqual(rec["closed_by"], "proxy")
        self.assertGreaterEqual(rec["duration_ms"], 1000)  # limits.header_timeout

    def test_half_sent_inner_head_gets_408(self):
        t = self.tls()
        try:
            t.sendall(b"GET /slow HTTP/1.1\r\nHost: proxy.g")
            answer = self.read_all(t)
        finally:
            t.close()
        self.assertTrue(answer.startswith(b"HTTP/1.1 408 "), answer[:200])
        client = self.client
        rec = self.d.wait_for_decision(
            lambda r: r.get("client") == client and r.get("status") == 408)[0]
        self.assertEqual(rec["closed_by"], "proxy")
        self.assertEqual(self.connect_record()["closed_by"], "proxy")

    def test_idle_client_between_requests_is_closed(self):
        t = self.tls()
        try:
            t.sendall(b"GET /idle HTTP/1.1\r\nHost: proxy.golang.org\r\n\r\n")
            answer = self.read_all(t)  # answered, then closed after idle_timeout
        finally:
            t.close()
        self.assertTrue(answer.startswith(b"HTTP/1.1 200 "), answer[:200])
        self.assertIn(b"hello /idle", answer)
        rec = self.connect_record()
        self.assertEqual(rec["closed_by"], "proxy")
        self.assertGreaterEqual(rec["duration_ms"], 2000)  # limits.idle_timeout


class InterceptStartupTest(unittest.TestCase):
    def test_unloadable_ca_stops_the_daemon(self):
        with tempfile.TemporaryDirectory(prefix="sy-empty-ca-") as empty:
            config = proxy_config(
                "tls: { ca_dir: \"%s\" }\n"
                "rules:\n"
                "  - name: goproxy\n"
                "    match: { hosts: \"proxy.golang.org\" }\n"
                "    action: mirror\n"
                "    mirrors: \"https://mirror.test\"\n"
                "    intercept: true\n" % empty)
            with self.assertRaises(AssertionError) as cm:
                Daemon(config=config)
            self.assertIn("tls.ca_dir " + empty, str(cm.exception))


if __name__ == "__main__":
    unittest.main()
