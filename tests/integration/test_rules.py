"""What decide() says, carried out: deny rules, the destination policy on
resolved addresses, and the decision fields in the log."""
import json
import os
import socket
import tempfile
import unittest

from harness import Daemon, Origin, TcpServer, curl, proxy_config, raw_exchange, recv_all
from harness import switchyard_decides

DECIDES = switchyard_decides()
SKIP_REASON = "rules::decide() is still the placeholder"


def echo(conn):
    while True:
        b = conn.recv(65536)
        if not b:
            return
        conn.sendall(b)


@unittest.skipUnless(DECIDES, SKIP_REASON)
class DenyTest(unittest.TestCase):
    def test_deny_rule_names_itself_everywhere(self):
        config = proxy_config(extra=(
            "rules:\n"
            "  - name: no-ads\n"
            "    match: { hosts: \".doubleclick.test\" }\n"
            "    action: deny\n"))
        d = Daemon(config=config)
        try:
            cases = [
                (b"CONNECT ad.doubleclick.test:443 HTTP/1.1\r\n"
                 b"Host: ad.doubleclick.test\r\n\r\n", "CONNECT"),
                (b"GET http://x.doubleclick.test/pixel HTTP/1.1\r\nHost: x\r\n\r\n", "GET"),
            ]
            for req, method in cases:
                with self.subTest(method=method):
                    reply = raw_exchange(d.port, req)
                    head, _, body = reply.partition(b"\r\n\r\n")
                    self.assertTrue(head.startswith(b"HTTP/1.1 403 Denied by rule no-ads\r\n"),
                                    head)
                    self.assertIn(b"\r\nProxy-Status: switchyard; error=http_request_denied; "
                                  b"details=\"", head)
                    self.assertIn(b"switchyard.yaml:", head)
                    self.assertIn(b"Content-Type: text/plain", head)
                    self.assertIn(b"denied by rule no-ads (", body)
                    self.assertIn(b".doubleclick.test", body)
                    rec = d.wait_for_decision(lambda r: r.get("method") == method)[0]
                    self.assertEqual(rec["status"], 403)
                    self.assertEqual(rec["rule"], "no-ads")
                    self.assertEqual(rec["action"], "deny")
                    self.assertRegex(rec["source"], r"switchyard\.yaml:\d+$")
                    self.assertIn(".doubleclick.test", rec["matched"])
                    self.assertIn("error=http_request_denied", rec["proxy_status"])
        finally:
            self.assertEqual(d.stop(), 0)


@unittest.skipUnless(DECIDES, SKIP_REASON)
class PrivateDestinationTest(unittest.TestCase):
    def test_resolved_private_addresses_are_refused_unless_allowed(self):
        with TcpServer(echo) as server, Origin() as origin:
            config = proxy_config(
                connect_ports=(server.port,),
                access_extra="  deny_private_destinations: true\n",
                extra=('resolve: { "inside.test": "127.0.0.1", "ok.test": "127.0.0.1" }\n'
                       "rules:\n"
                       "  - name: metadata-ok\n"
                       "    match: { hosts: \"ok.test\" }\n"
                       "    action: direct\n"
                       "    allow_private: true\n"))
            d = Daemon(config=config)
            try:
                reply = raw_exchange(d.port, b"CONNECT inside.test:%d HTTP/1.1\r\n"
                                             b"Host: inside.test\r\n\r\n"
                                     % server.port)
                self.assertTrue(reply.startswith(b"HTTP/1.1 403 "), reply)
                self.assertIn(b"error=destination_ip_prohibited", reply)
                reply = raw_exchange(d.port, ("GET http://inside.test:%d/x HTTP/1.1\r\n"
                                              "Host: x\r\n\r\n" % origin.port).encode())
                self.assertTrue(reply.startswith(b"HTTP/1.1 403 "), reply)
                self.assertEqual(origin.requests, [])
                # The rule with allow_private gets through.
                s = socket.create_connection(("127.0.0.1", d.port), timeout=10)
                s.sendall(b"CONNECT ok.test:%d HTTP/1.1\r\nHost: ok.test\r\n\r\nhi" % server.port)
                data = b""
                while not data.endswith(b"hi"):
                    b = s.recv(100)
                    if not b:
                        break
                    data += b
                s.close()
                self.assertTrue(data.startswith(b"HTTP/1.1 200 "), data)
                r = curl("http://ok.test:%d/fine" % origin.port, proxy=d.proxy_url)
                self.assertEqual(r.stdout, "hello /fine\n")
            finally:
                self.assertEqual(d.stop(), 0)


if __name__ == "__main__":
    unittest.main()
