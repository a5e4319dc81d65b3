"""Malformed and abusive requests: each is answered, the connection closed, and
the daemon keeps serving everyone else."""
import socket
import time
import unittest

from harness import Daemon, Origin, curl, proxy_config, raw_exchange, recv_all


class MalformedTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.origin = Origin()
        cls.daemon = Daemon(config=proxy_config(
            limits={"max_header_bytes": 2048, "header_timeout": "1s"}))

    @classmethod
    def tearDownClass(cls):
        rc = cls.daemon.stop()
        cls.origin.close()
        if rc != 0:
            raise AssertionError("daemon exit code %d" % rc)

    def assert_still_serving(self):
        r = curl(self.origin.url("/alive"), proxy=self.daemon.proxy_url)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, "hello /alive\n")

    def exchange(self, data):
        """Sends `data`, returns (reply, closed): the daemon must close after answering."""
        reply = raw_exchange(self.daemon.port, data, deadline=10)
        return reply

    def test_each_malformed_class(self):
        url = self.origin.url("/m").encode()
        cases = [
            ("te_and_cl", b"POST " + url + b" HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n"
             b"Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", 400),
            ("duplicate_differing_cl", b"POST " + url + b" HTTP/1.1\r\nHost: x\r\n"
             b"Content-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", 400),
            ("bad_chunk_size", b"POST " + url + b" HTTP/1.1\r\nHost: x\r\n"
             b"Transfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n", 400),
            ("te_not_chunked", b"POST " + url + b" HTTP/1.1\r\nHost: x\r\n"
             b"Transfer-Encoding: gzip\r\n\r\nabc", 400),
            ("space_before_colon", b"GET " + url + b" HTTP/1.1\r\nHost : x\r\n\r\n", 400),
            ("lf_only", b"GET " + url + b" HTTP/1.1\nHost: x\n\n", 400),
            ("bad_method", b"G@T " + url + b" HTTP/1.1\r\nHost: x\r\n\r\n", 400),
            ("bad_version", b"GET " + url + b" HTTP/1.a\r\nHost: x\r\n\r\n", 400),
            ("unsupported_version", b"GET " + url + b" HTTP/7.3\r\nHost: x\r\n\r\n", 505),
            ("http_2_0_line", b"GET " + url + b" HTTP/2.0\r\nHost: x\r\n\r\n", 505),
            ("unknown_method", b"FOO " + url + b" HTTP/1.1\r\nHost: x\r\n\r\n", 501),
            ("missing_host", b"GET " + url + b" HTTP/1.1\r\n\r\n", 400),
            ("gzip_then_chunked", b"POST " + url + b" HTTP/1.1\r\nHost: x\r\n"
             b"Transfer-Encoding: gzip, chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", 501),
            ("unsafe_target_char", b"GET " + url + b"/a|b HTTP/1.1\r\nHost: x\r\n\r\n", 400),
            ("target_too_long",
             b"GET " + url + b"/" + b"a" * 3000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
            ("garbage", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 64, 400),
            ("header_too_large", b"GET " + url + b" HTTP/1.1\r\nHost: x\r\nX-Big: " +
             b"a" * 4000 + b"\r\n\r\n", 431),
            ("too_many_fields", b"GET " + url + b" HTTP/1.1\r\nHost: x\r\n" +
             b"".join(b"X-%d: 1\r\n" % i for i in range(300)) + b"\r\n", 431),
            ("duplicate_host", b"GET " + url + b" HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
            ("connect_without_port", b"CONNECT example.com HTTP/1.1\r\n"
                                     b"Host: example.com\r\n\r\n", 400),
            ("https_without_connect", b"GET https://example.com/ HTTP/1.1\r\nHost: x\r\n\r\n",
             400),
            ("unknown_scheme", b"GET ftp://example.com/ HTTP/1.1\r\nHost: x\r\n\r\n", 400),
            ("bad_host", b"GET http://exa%mple.com/ HTTP/1.1\r\nHost: x\r\n\r\n", 400),
        ]
        for name, data, status in cases:
            with self.subTest(case=name):
                reply = self.exchange(data)
                self.assertTrue(reply.startswith(b"HTTP/1.1 %d " % status), reply[:200])
                self.assertIn(b"\r\nProxy-Status: switchyard; error=", reply)
                self.assertIn(b"\r\nConnection: close\r\n", reply)
                self.assertIn(b"\r\nContent-Type: text/plain", reply)
                self.assert_still_serving()
        self.assertEqual([r for r in self.origin.requests if r["path"] == "/m"], [])

    def test_slowloris_gets_408(self):
        s = socket.create_connection(("127.0.0.1", self.daemon.port), timeout=10)
        start = time.monotonic()
        s.sendall(b"GET " + self.origin.url("/slow").encode() + b" HTTP/1.1\r\nHost: x\r\n")
        reply = recv_all(s, deadline=10)
        elapsed = time.monotonic() - start
        s.close()
        self.assertTrue(reply.startswith(b"HTTP/1.1 408 "), reply)
        self.assertIn(b"limits.header_timeout", reply)
        self.assertLess(elapsed, 5)
        rec = self.daemon.wait_for_decision(lambda d: d.get("status") == 408)[0]
        self.assertEqual(rec["closed_by"], "proxy")
        self.assert_still_serving()

    def test_silent_connection_is_closed_without_answer(self):
        s = socket.create_connection(("127.0.0.1", self.daemon.port), timeout=10)
        self.assertEqual(recv_all(s, deadline=10), b"")
        s.close()
        self.assert_still_serving()

    def test_decision_line_for_malformed_request(self):
        self.exchange(b"GET http://log.test/ HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n")
        rec = self.daemon.wait_for_decision(lambda d: d.get("target") == "http://log.test/")[0]
        self.assertEqual(rec["status"], 400)
        self.assertIn("error=http_request_error", rec["proxy_status"])


if __name__ == "__main__":
    unittest.main()
