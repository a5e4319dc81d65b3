"""Action upstream: a chain switchyard -> switchyard (parent), the parent's
credentials, its refusals (407 never passed on), and NO_PROXY vs HTTPS_PROXY."""
import json
import socket
import tempfile
import threading
import unittest

from harness import (Daemon, Origin, TcpServer, curl, make_cert, proxy_config, raw_exchange,
                     switchyard_decides)

DECIDES = switchyard_decides()
SKIP_REASON = "rules::decide() is still the placeholder (switchyard explain does not answer)"


def answer_407(conn):
    data = b""
    while b"\r\n\r\n" not in data:
        b = conn.recv(65536)
        if not b:
            return
        data += b
    conn.sendall(b"HTTP/1.1 407 Proxy Authentication Required\r\n"
                 b"Proxy-Authenticate: Basic realm=\"parent\"\r\nContent-Length: 0\r\n\r\n")


def names_config(port_list, parent_url=None, extra=""):
    rules = ""
    if parent_url:
        rules = ("rules:\n  - name: via-parent\n    match: { hosts: \"origin.test\" }\n"
                 "    action: upstream\n    upstream: \"%s\"\n" % parent_url)
    return proxy_config(connect_ports=port_list,
                        extra='resolve: { "origin.test": "127.0.0.1", '
                              '"direct.test": "127.0.0.1" }\n' + rules + extra)


@unittest.skipUnless(DECIDES, SKIP_REASON)
class ChainTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="sy-chain-")
        cls.cert = make_cert(cls.tmp.name, names=("origin.test", "direct.test", "127.0.0.1"))
        cls.tls = Origin(tls_cert=cls.cert)
        cls.plain = Origin()
        cls.parent = Daemon(config=names_config((cls.tls.port,)))
        cls.parent_url = "http://user:s3cret@127.0.0.1:%d" % cls.parent.port
        cls.front = Daemon(config=names_config((cls.tls.port,), cls.parent_url))

    @classmethod
    def tearDownClass(cls):
        rcs = [cls.front.stop(), cls.parent.stop()]
        cls.tls.close()
        cls.plain.close()
        cls.tmp.cleanup()
        if rcs != [0, 0]:
            raise AssertionError("exit codes %s" % rcs)

    def test_https_through_parent(self):
        r = curl("--cacert", self.cert[0], "https://origin.test:%d/chain" % self.tls.port,
                 proxy=self.front.proxy_url)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, "hello /chain\n")
        rec = self.front.wait_for_decision(lambda d: d.get("method") == "CONNECT")[0]
        self.assertEqual(rec["action"], "upstream")
        self.assertEqual(rec["rule"], "via-parent")
        self.assertEqual(rec["next_hop"], "http://user:***@127.0.0.1:%d" % self.parent.port)
        self.assertEqual(rec["status"], 200)
        self.assertEqual(rec["attempts"][0]["status"], 200)
        self.assertNotIn("s3cret", json.dumps(self.front.decisions()))
        prec = self.parent.wait_for_decision(lambda d: d.get("method") == "CONNECT")[0]
        self.assertEqual(prec["target"], "origin.test:%d" % self.tls.port)
        self.assertEqual(prec["action"], "direct")

    def test_http_through_parent(self):
        r = curl("http://origin.test:%d/headers" % self.plain.port, proxy=self.front.proxy_url)
        self.assertEqual(r.returncode, 0, r.stderr)
        headers = {k.lower(): v for k, v in json.loads(r.stdout)}
        self.assertEqual(headers["via"], "1.1 switchyard (127.0.0.1:%d), 1.1 switchyard "
                                         "(127.0.0.1:%d)" % (self.front.port, self.parent.port))
        self.assertNotIn("proxy-authorization", headers)
        prec = self.parent.wait_for_decision(lambda d: d.get("target", "").endswith("/headers"))
        self.assertEqual(prec[0]["target"], "http://origin.test:%d/headers" % self.plain.port)

    def test_bytes_and_end_sent_before_the_tunnel_is_up_are_kept(self):
        # The client pipelines data and even half-closes while the parent
        # has not answered CONNECT yet: once the parent says 200, it gets the
        # bytes and the FIN, in order, and its answer still reaches the client.
        got_connect = threading.Event()
        answer_now = threading.Event()
        seen = {}

        def slow_parent(conn):
            data = b""
            while b"\r\n\r\n" not in data:
                data += conn.recv(65536)
            got_connect.set()  # the proxy has read the head and is waiting for us
            answer_now.wait(10)
            conn.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            rest = data.split(b"\r\n\r\n", 1)[1]
            while True:
                b = conn.recv(65536)
                if not b:
                    break
                rest += b
            seen["bytes"] = rest
            conn.sendall(b"pong:" + rest)

        with TcpServer(slow_parent) as parent:
            d = Daemon(config=names_config((443,), "http://127.0.0.1:%d" % parent.port))
            try:
                s = socket.create_connection(("127.0.0.1", d.port), timeout=10)
                s.sendall(b"CONNECT origin.test:443 HTTP/1.1\r\nHost: origin.test:443\r\n\r\n")
                self.assertTrue(got_connect.wait(10))
                s.sendall(b"early-")
                s.sendall(b"bytes")
                s.shutdown(socket.SHUT_WR)
                answer_now.set()
                got = b""
                while True:
                    b = s.recv(65536)
                    if not b:
                        break
                    got += b
                s.close()
            finally:
                d.stop()
        self.assertEqual(seen.get("bytes"), b"early-bytes")
        self.assertEqual(got, b"HTTP/1.1 200 Connection established\r\n\r\npong:early-bytes")

    def test_parent_refusal_is_passed_on(self):
        with TcpServer(lambda c: None) as other:
            front = Daemon(config=names_config((other.port,), self.parent_url))
            try:
                reply = raw_exchange(front.port, ("CONNECT origin.test:%d HTTP/1.1\r\n"
                                                  "Host: origin.test\r\n\r\n"
                                                  % other.port).encode())
                self.assertTrue(reply.startswith(b"HTTP/1.1 403 Parent proxy refused: 403"), reply)
                status_line = [l for l in reply.split(b"\r\n") if l.startswith(b"Proxy-Status:")]
                self.assertEqual(len(status_line), 1)
                # The parent's member first, then ours.
                self.assertRegex(status_line[0], rb"^Proxy-Status: switchyard; .*, switchyard; "
                                                 rb"error=http_request_denied; received-status=403")
            finally:
                self.assertEqual(front.stop(), 0)

    def test_parent_407_becomes_502(self):
        with TcpServer(answer_407) as fake:
            url = "http://user:s3cret@127.0.0.1:%d" % fake.port
            front = Daemon(config=names_config((self.tls.port,), url))
            try:
                for req in (b"CONNECT origin.test:%d HTTP/1.1\r\n"
                            b"Host: origin.test\r\n\r\n" % self.tls.port,
                            b"GET http://origin.test:%d/x HTTP/1.1\r\nHost: x\r\n\r\n"
                            % self.plain.port):
                    with self.subTest(req=req[:7]):
                        reply = raw_exchange(front.port, req)
                        self.assertTrue(reply.startswith(b"HTTP/1.1 502 "), reply)
                        self.assertIn(b"127.0.0.1:%d" % fake.port, reply)
                        self.assertIn(b"user:***@", reply)
                        self.assertNotIn(b"s3cret", reply)
                        self.assertNotIn(b"Proxy-Authenticate", reply)
                        self.assertIn(b"received-status=407", reply)
            finally:
                self.assertEqual(front.stop(), 0)

    def test_parent_unreachable_is_502_naming_it(self):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            dead = s.getsockname()[1]
        url = "http://user:s3cret@127.0.0.1:%d" % dead
        front = Daemon(config=names_config((self.tls.port,), url))
        try:
            reply = raw_exchange(front.port,
                                 b"CONNECT origin.test:%d HTTP/1.1\r\n"
                                 b"Host: origin.test\r\n\r\n" % self.tls.port)
            self.assertTrue(reply.startswith(b"HTTP/1.1 502 "), reply)
            self.assertIn(b"parent proxy http://user:***@127.0.0.1:%d" % dead, reply)
            self.assertNotIn(b"s3cret", reply)
            rec = front.wait_for_decision(lambda d: d.get("method") == "CONNECT")[0]
            self.assertEqual(rec["status"], 502)
            self.assertNotIn("s3cret", json.dumps(rec))
        finally:
            self.assertEqual(front.stop(), 0)


@unittest.skipUnless(DECIDES, SKIP_REASON)
class EnvironmentTest(unittest.TestCase):
    def test_no_proxy_bypass_vs_https_proxy(self):
        with tempfile.TemporaryDirectory(prefix="sy-env-") as tmp:
            cert = make_cert(tmp, names=("origin.test", "direct.test"))
            with Origin(tls_cert=cert) as tls:
                parent = Daemon(config=names_config((tls.port,)))
                front = Daemon(config=names_config((tls.port,)),
                               env={"HTTPS_PROXY": "http://127.0.0.1:%d" % parent.port,
                                    "NO_PROXY": "direct.test"})
                try:
                    for name in ("origin.test", "direct.test"):
                        r = curl("--cacert", cert[0], "https://%s:%d/%s" % (name, tls.port, name),
                                 proxy=front.proxy_url)
                        self.assertEqual(r.returncode, 0, r.stderr)
                    recs = front.wait_for_decision(lambda d: d.get("method") == "CONNECT",
                                                   count=2)
                    by_host = {d["host"]: d for d in recs}
                    self.assertEqual(by_host["origin.test"]["action"], "upstream")
                    self.assertEqual(by_host["origin.test"]["rule"], "env:HTTPS_PROXY")
                    self.assertEqual(by_host["direct.test"]["action"], "direct")
                    self.assertEqual(by_host["direct.test"]["rule"], "env:NO_PROXY")
                    seen = parent.wait_for_decision(lambda d: d.get("method") == "CONNECT")
                    self.assertEqual([d["host"] for d in seen], ["origin.test"])
                finally:
                    self.assertEqual(front.stop(), 0)
                    self.assertEqual(parent.stop(), 0)


if __name__ == "__main__":
    unittest.main()
