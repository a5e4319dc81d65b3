"""Plain HTTP forwarding (absolute-form requests), action direct."""
import hashlib
import json
import os
import socket
import tempfile
import unittest

from harness import (Daemon, Origin, TcpServer, curl, pattern_sha256, proxy_config,
                     proxy_get, raw_exchange, recv_all, recv_until, wait_until)


class ForwardTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.origin = Origin()
        cls.daemon = Daemon(config=proxy_config())
        cls.tmp = tempfile.TemporaryDirectory(prefix="sy-fwd-")

    @classmethod
    def tearDownClass(cls):
        rc = cls.daemon.stop()
        cls.origin.close()
        cls.tmp.cleanup()
        if rc != 0:
            raise AssertionError("daemon exit code %d" % rc)

    def setUp(self):
        with self.origin.lock:
            self.origin.requests.clear()
            self.origin.connections.clear()

    def curl(self, *args, **kw):
        return curl(*args, proxy=self.daemon.proxy_url, **kw)

    def test_get_strips_hop_by_hop_and_adds_via(self):
        r = self.curl("-H", "Connection: X-Drop-Me", "-H", "X-Drop-Me: 1", "-H", "Keep-Alive: 5",
                      "-H", "Proxy-Authorization: Basic c2VjcmV0OnNlY3JldA==", "-H",
                      "TE: trailers", "-H", "X-Keep: yes", self.origin.url("/headers"))
        self.assertEqual(r.returncode, 0, r.stderr)
        headers = {k.lower(): v for k, v in json.loads(r.stdout)}
        for gone in ("x-drop-me", "keep-alive", "proxy-authorization", "te", "connection",
                     "proxy-connection"):
            self.assertNotIn(gone, headers)
        self.assertEqual(headers["x-keep"], "yes")
        self.assertEqual(headers["host"], "127.0.0.1:%d" % self.origin.port)
        self.assertRegex(headers["via"], r"^1\.1 switchyard \(127\.0\.0\.1:%d\)$" % self.daemon.port)
        rec = self.daemon.wait_for_decision(lambda d: d.get("target", "").endswith("/headers"))[0]
        self.assertEqual(rec["status"], 200)
        self.assertEqual(rec["action"], "direct")
        self.assertEqual(rec["method"], "GET")
        self.assertEqual(rec["host"], "127.0.0.1")
        self.assertEqual(rec["port"], self.origin.port)
        self.assertEqual(rec["resolved"], "127.0.0.1:%d" % self.origin.port)
        self.assertGreater(rec["bytes_out"], 0)
        self.assertNotIn("c2VjcmV0", json.dumps(rec))

    def test_origin_sees_origin_form(self):
        r = self.curl(self.origin.url("/plain?x=1"))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, "hello /plain?x=1\n")
        self.assertEqual(self.origin.requests[-1]["path"], "/plain?x=1")

    def test_post_with_body(self):
        body = os.urandom(300000)
        path = os.path.join(self.tmp.name, "post.bin")
        with open(path, "wb") as f:
            f.write(body)
        r = self.curl("--data-binary", "@" + path, self.origin.url("/upload"))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(json.loads(r.stdout),
                         {"length": len(body), "sha256": hashlib.sha256(body).hexdigest()})
        rec = self.daemon.wait_for_decision(
            lambda d: d.get("method") == "POST" and d.get("target", "").endswith("/upload"))[-1]
        self.assertGreaterEqual(rec["bytes_in"], len(body))

    def test_origin_answering_before_the_body_ends(self):
        path = os.path.join(self.tmp.name, "early.bin")
        with open(path, "wb") as f:
            f.write(os.urandom(4 << 20))
        r = self.curl("-o", "/dev/null", "-w", "%{http_code}", "--data-binary", "@" + path,
                      self.origin.url("/early"))
        self.assertEqual(r.stdout, "413")
        rec = self.daemon.wait_for_decision(lambda d: d.get("target", "").endswith("/early"))[0]
        self.assertEqual(rec["status"], 413)
        r = self.curl(self.origin.url("/after-early"))
        self.assertEqual(r.stdout, "hello /after-early\n")

    def test_chunked_upload(self):
        body = os.urandom(200001)
        path = os.path.join(self.tmp.name, "chunked.bin")
        with open(path, "wb") as f:
            f.write(body)
        r = self.curl("-H", "Transfer-Encoding: chunked", "--data-binary", "@" + path,
                      self.origin.url("/upload-chunked"))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(json.loads(r.stdout),
                         {"length": len(body), "sha256": hashlib.sha256(body).hexdigest()})
        te = [v for k, v in self.origin.requests[-1]["headers"] if k.lower() == "transfer-encoding"]
        self.assertEqual(te, ["chunked"])

    def test_chunked_download(self):
        size = 3 * 1000 * 1000 + 7
        out = os.path.join(self.tmp.name, "chunked.out")
        r = self.curl("-o", out, "-D", "-", self.origin.url("/chunked?size=%d" % size))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("transfer-encoding: chunked", r.stdout.lower())
        with open(out, "rb") as f:
            self.assertEqual(hashlib.sha256(f.read()).hexdigest(), pattern_sha256(size))

    def test_body_until_close_is_rechunked_for_http11(self):
        size = 500000
        out = os.path.join(self.tmp.name, "close.out")
        r = self.curl("-o", out, "-D", "-", self.origin.url("/until-close?size=%d" % size))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("transfer-encoding: chunked", r.stdout.lower())
        with open(out, "rb") as f:
            self.assertEqual(hashlib.sha256(f.read()).hexdigest(), pattern_sha256(size))

    def test_100mb_response_sha256(self):
        size = 100 * 1024 * 1024
        out = os.path.join(self.tmp.name, "big.out")
        r = self.curl("-o", out, self.origin.url("/big?size=%d" % size), timeout=300)
        self.assertEqual(r.returncode, 0, r.stderr)
        h = hashlib.sha256()
        with open(out, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        self.assertEqual(h.hexdigest(), pattern_sha256(size))
        os.unlink(out)
        rec = self.daemon.wait_for_decision(lambda d: "/big?size=%d" % size in d.get("target", ""))
        self.assertGreater(rec[0]["bytes_out"], size)

    def test_keep_alive_reuses_both_connections(self):
        urls = [self.origin.url("/ka/%d" % i) for i in range(4)]
        r = self.curl(*urls)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, "".join("hello /ka/%d\n" % i for i in range(4)))
        # One client connection to the proxy, one proxy connection to the origin.
        recs = self.daemon.wait_for_decision(lambda d: "/ka/" in d.get("target", ""), count=4)
        self.assertEqual(len({d["conn"] for d in recs}), 1)
        self.assertEqual(len(self.origin.connections), 1, self.origin.connections)

    def test_pool_reused_across_clients(self):
        self.curl(self.origin.url("/pool/1"))
        self.curl(self.origin.url("/pool/2"))
        recs = self.daemon.wait_for_decision(lambda d: "/pool/" in d.get("target", ""), count=2)
        self.assertEqual(len({d["conn"] for d in recs}), 2)
        self.assertEqual(len(self.origin.connections), 1, self.origin.connections)

    def test_head_request(self):
        r = self.curl("-I", self.origin.url("/big?size=12345"))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("content-length: 12345", r.stdout.lower())
        # The connection stays usable: a HEAD response has no body to wait for.
        r = self.curl("-I", self.origin.url("/x"), self.origin.url("/y"))
        self.assertEqual(r.returncode, 0, r.stderr)

    def test_http10_client_gets_close_delimited_body(self):
        req = ("GET %s HTTP/1.0\r\n\r\n" % self.origin.url("/chunked?size=70000")).encode()
        reply = raw_exchange(self.daemon.port, req)
        head, _, body = reply.partition(b"\r\n\r\n")
        self.assertTrue(head.startswith(b"HTTP/1.1 200"), head)
        self.assertNotIn(b"transfer-encoding", head.lower())
        self.assertEqual(hashlib.sha256(body).hexdigest(), pattern_sha256(70000))

    def test_pipelined_requests_answered_in_order(self):
        reqs = b"".join(("GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % self.origin.url("/p%d" % i)).encode()
                        for i in range(3))
        reqs += ("GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                 % self.origin.url("/p3")).encode()
        reply = raw_exchange(self.daemon.port, reqs)
        bodies = [b"hello /p%d\n" % i for i in range(4)]
        pos = 0
        for b in bodies:
            i = reply.find(b, pos)
            self.assertGreater(i, pos - 1, reply)
            pos = i + len(b)

    def _origin_saw(self, path):
        with self.origin.lock:
            return any(r["path"].endswith(path) for r in self.origin.requests)

    def test_pipelined_request_arriving_while_the_first_is_in_flight(self):
        # The second request reaches the proxy while the first waits for the
        # origin: it is held (read, not parsed) and answered after the first.
        first = ("GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % self.origin.url("/slow?ms=300")).encode()
        second = ("GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                  % self.origin.url("/late-second")).encode()
        with socket.create_connection(("127.0.0.1", self.daemon.port)) as s:
            s.sendall(first)
            wait_until(lambda: self._origin_saw("/slow?ms=300"), what="the first request upstream")
            s.sendall(second)
            reply = recv_all(s)
        i = reply.find(b"slow done\n")
        j = reply.find(b"hello /late-second\n")
        self.assertGreaterEqual(i, 0, reply)
        self.assertGreater(j, i, reply)

    def test_client_eof_while_its_request_is_in_flight(self):
        # A client that half-closes after its request still gets the answer;
        # the connection ends after it.
        req = ("GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % self.origin.url("/slow?ms=300")).encode()
        with socket.create_connection(("127.0.0.1", self.daemon.port)) as s:
            s.sendall(req)
            wait_until(lambda: self._origin_saw("/slow?ms=300"), what="the request upstream")
            s.shutdown(socket.SHUT_WR)
            reply = recv_all(s)
        self.assertTrue(reply.startswith(b"HTTP/1.1 200"), reply)
        self.assertTrue(reply.endswith(b"slow done\n"), reply)

    def test_pipelined_requests_beyond_the_read_ahead_bound(self):
        # More than Connection::kMaxPendingInput (64 KiB) pipelined behind a
        # slow request: reading really stops, resumes, and every request is
        # answered in order.
        pad = "a" * 500
        reqs = [("GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % self.origin.url("/slow?ms=200")).encode()]
        for i in range(200):
            close = "Connection: close\r\n" if i == 199 else ""
            reqs.append(("GET %s HTTP/1.1\r\nHost: x\r\nX-Pad: %s\r\n%s\r\n"
                         % (self.origin.url("/ra%d" % i), pad, close)).encode())
        data = b"".join(reqs)
        self.assertGreater(len(data), 100 * 1024)
        reply = raw_exchange(self.daemon.port, data, deadline=60.0)
        pos = reply.find(b"slow done\n")
        self.assertGreaterEqual(pos, 0, reply[:300])
        for i in range(200):
            body = b"hello /ra%d\n" % i
            j = reply.find(body, pos)
            self.assertGreaterEqual(j, 0, "answer %d missing" % i)
            pos = j + len(body)

    def test_pooled_connection_closed_on_its_next_request_is_retried_once(self):
        # The origin's first connection answers one request, keeps the
        # connection, then closes it on the next request without a word: the
        # proxy (which took it from the pool, still reading) sends the GET
        # again on a new connection, and the client never notices.
        connections = []

        def handler(conn):
            index = len(connections)
            connections.append(conn)
            while True:
                req = recv_until(conn, b"\r\n\r\n")
                if not req.endswith(b"\r\n\r\n"):
                    return
                if index == 0 and b"/second" in req:
                    return  # closes without answering
                body = b"answer %d\n" % index
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))

        with TcpServer(handler) as origin:
            first = proxy_get(self.daemon.port, "http://127.0.0.1:%d/first" % origin.port)
            self.assertEqual(first.status, 200, first.raw)
            self.assertEqual(first.body, b"answer 0\n")
            second = proxy_get(self.daemon.port, "http://127.0.0.1:%d/second" % origin.port)
            self.assertEqual(second.status, 200, second.raw)
            self.assertEqual(second.body, b"answer 1\n")
            self.assertEqual(len(connections), 2)
            # The log says why a second connection was needed: the dead
            # pooled one is an attempt of its own.
            rec = self.daemon.wait_for_decision(lambda r: r.get("target", "").endswith("/second"))[0]
            hop = "http://127.0.0.1:%d" % origin.port
            self.assertEqual([(a["url"], a["status"], a["next"]) for a in rec["attempts"]],
                             [(hop, None, "fell through: retried on a new connection"),
                              (hop, 200, "served")], rec)
            self.assertIn("reused idle connection", rec["attempts"][0]["error"])
            first_rec = self.daemon.wait_for_decision(
                lambda r: r.get("target", "").endswith("/first"))[0]
            self.assertEqual(len(first_rec["attempts"]), 1, first_rec)

    def test_origin_form_that_is_no_goproxy_path_is_404(self):
        # Origin-form requests are for switchyard as a GOPROXY server
        # (test_goproxy_server.py); anything else there is not found.
        reply = raw_exchange(self.daemon.port, b"GET /x HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertTrue(reply.startswith(b"HTTP/1.1 404 Not a GOPROXY path"), reply)
        self.assertIn(b"Proxy-Status: switchyard; error=destination_not_found", reply)

    def test_https_url_without_connect_is_400(self):
        reply = raw_exchange(self.daemon.port,
                             b"GET https://example.com/ HTTP/1.1\r\nHost: example.com\r\n\r\n")
        self.assertTrue(reply.startswith(b"HTTP/1.1 400 "), reply)
        self.assertIn(b"CONNECT", reply)
        self.assertIn(b"error=http_request_error", reply)

    def test_own_via_token_is_a_loop(self):
        req = ("GET %s HTTP/1.1\r\nHost: x\r\nVia: 1.0 other, 1.1 switchyard (127.0.0.1:%d)\r\n\r\n"
               % (self.origin.url("/loop"), self.daemon.port)).encode()
        reply = raw_exchange(self.daemon.port, req)
        self.assertTrue(reply.startswith(b"HTTP/1.1 508 "), reply)
        self.assertIn(b"error=proxy_loop_detected", reply)
        self.assertEqual([r for r in self.origin.requests if r["path"] == "/loop"], [])

    def test_request_aimed_at_our_listener_is_a_loop(self):
        req = ("GET http://127.0.0.1:%d/self HTTP/1.1\r\nHost: x\r\n\r\n" % self.daemon.port).encode()
        reply = raw_exchange(self.daemon.port, req)
        self.assertTrue(reply.startswith(b"HTTP/1.1 508 "), reply)

    def test_refused_origin_is_502_with_proxy_status(self):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        r = self.curl("-D", "-", "http://127.0.0.1:%d/nothing" % port)
        self.assertIn("HTTP/1.1 502 Connection refused", r.stdout)
        self.assertIn("proxy-status: switchyard; error=connection_refused", r.stdout.lower())
        rec = self.daemon.wait_for_decision(lambda d: d.get("port") == port)[0]
        self.assertEqual(rec["status"], 502)
        self.assertIn("error=connection_refused", rec["proxy_status"])
        self.assertEqual(rec["closed_by"], "proxy")

    def test_origin_statuses_pass_through(self):
        for code in (204, 304, 404, 500):
            with self.subTest(code=code):
                r = self.curl("-o", "/dev/null", "-w", "%{http_code}",
                              self.origin.url("/status?code=%d" % code))
                self.assertEqual(r.stdout, str(code))
                # The exchange ends with the response (a 304's Content-Length
                # announces no body), so its record is written at once.
                rec = self.daemon.wait_for_decision(
                    lambda d: d.get("target", "").endswith("/status?code=%d" % code),
                    deadline=10)[0]
                self.assertEqual(rec["status"], code)
                self.assertEqual(rec["closed_by"], "upstream")

    def test_one_decision_line_per_request(self):
        r = self.curl(self.origin.url("/once/a"), self.origin.url("/once/b"))
        self.assertEqual(r.returncode, 0, r.stderr)
        # A connection that sends nothing leaves no line.
        socket.create_connection(("127.0.0.1", self.daemon.port)).close()
        self.curl(self.origin.url("/once/c"))
        recs = self.daemon.wait_for_decision(lambda d: "/once/" in d.get("target", ""), count=3)
        self.assertEqual(sorted(d["target"][-1] for d in recs), ["a", "b", "c"])
        self.assertEqual([d for d in self.daemon.decisions() if not d.get("method")], [])

if __name__ == "__main__":
    unittest.main()
