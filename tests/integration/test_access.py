"""Access control on the proxy port: access.allow_clients, access.connect_ports,
access.deny_private_destinations (checked on resolved addresses, with the
rule-level allow_private exemption) and limits.max_connections_per_client.

The origins of these tests listen on loopback, so deny_private_destinations
is only switched on in the configs of the tests that are about it; names
are pointed at loopback with `resolve:`, the way DNS rebinding would.
"""
import signal
import socket
import unittest

from harness import (Daemon, Origin, TcpServer, curl, proxy_config, raw_exchange, recv_all,
                     recv_until)


def echo(conn):
    while True:
        b = conn.recv(65536)
        if not b:
            return
        conn.sendall(b)


def header(reply, name):
    """The value of the first `name` field of a raw HTTP response."""
    head = reply.split(b"\r\n\r\n", 1)[0].decode("latin-1")
    for line in head.split("\r\n")[1:]:
        k, _, v = line.partition(":")
        if k.strip().lower() == name.lower():
            return v.strip()
    return None


class AllowClientsTest(unittest.TestCase):
    def test_client_outside_allow_clients_gets_403_and_a_log_line(self):
        with Origin() as origin, TcpServer(echo) as echo_server:
            d = Daemon(config=proxy_config(connect_ports=(echo_server.port,),
                                           access_extra='  allow_clients: ["10.0.0.0/8"]\n'))
            try:
                cases = [
                    ("GET", ("GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % origin.url("/acl")).encode()),
                    ("CONNECT", ("CONNECT 127.0.0.1:%d HTTP/1.1\r\n"
                                 "Host: 127.0.0.1\r\n\r\n" % echo_server.port)
                     .encode()),
                ]
                for method, request in cases:
                    with self.subTest(method=method):
                        reply = raw_exchange(d.port, request)
                        self.assertTrue(reply.startswith(b"HTTP/1.1 403 Client not allowed\r\n"),
                                        reply)
                        self.assertIn("error=http_request_denied",
                                      header(reply, "Proxy-Status"))
                        self.assertIn(b"not in access.allow_clients", reply)
                d.wait_for_log(r"client 127\.0\.0\.1:\d+ is not in access\.allow_clients: its "
                               r"requests get 403")
                recs = d.wait_for_decision(lambda r: r.get("rule") == "access.allow_clients",
                                           count=2)
                self.assertEqual(sorted(r["method"] for r in recs), ["CONNECT", "GET"])
                self.assertTrue(all(r["status"] == 403 for r in recs))
                # Nothing reached the origin or the echo server.
                self.assertEqual(origin.requests, [])
            finally:
                self.assertEqual(d.stop(), 0)

    def test_cidr_that_includes_loopback_allows(self):
        with Origin() as origin:
            d = Daemon(config=proxy_config(
                access_extra='  allow_clients: ["10.0.0.0/8", "127.0.0.0/24"]\n'))
            try:
                r = curl(origin.url("/in"), proxy=d.proxy_url)
                self.assertEqual(r.stdout, "hello /in\n", r.stderr)
            finally:
                self.assertEqual(d.stop(), 0)


class ConnectPortsTest(unittest.TestCase):
    def test_only_listed_ports_are_tunnelled(self):
        with TcpServer(echo) as allowed, TcpServer(echo) as other:
            d = Daemon(config=proxy_config(connect_ports=(allowed.port,)))
            try:
                reply = raw_exchange(d.port, ("CONNECT 127.0.0.1:%d HTTP/1.1\r\n"
                                              "Host: 127.0.0.1\r\n\r\n"
                                              % other.port).encode())
                self.assertTrue(reply.startswith(b"HTTP/1.1 403 Port %d not allowed\r\n"
                                                 % other.port), reply)
                self.assertIn("access.connect_ports allows %d" % allowed.port,
                              header(reply, "Proxy-Status"))
                with socket.create_connection(("127.0.0.1", d.port), timeout=10) as s:
                    s.sendall(("CONNECT 127.0.0.1:%d HTTP/1.1\r\n"
                               "Host: 127.0.0.1\r\n\r\n" % allowed.port).encode())
                    self.assertTrue(recv_until(s, b"\r\n\r\n").startswith(b"HTTP/1.1 200 "))
                    s.sendall(b"hi")
                    self.assertEqual(recv_until(s, b"hi"), b"hi")
                rec = d.wait_for_decision(lambda r: r.get("rule") == "access.connect_ports")[0]
                self.assertEqual((rec["status"], rec["port"]), (403, other.port))
            finally:
                self.assertEqual(d.stop(), 0)


PRIVATE_RULES = """\
resolve:
  evil.test: "127.0.0.1"
  trusted.test: "127.0.0.1"
rules:
  - name: trusted-internal
    match: { hosts: "trusted.test" }
    action: direct
    allow_private: true
"""


class DenyPrivateDestinationsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.origin = Origin()
        cls.echo = TcpServer(echo)
        cls.daemon = Daemon(config=proxy_config(
            PRIVATE_RULES, connect_ports=(cls.echo.port,),
            access_extra="  deny_private_destinations: true\n"))

    @classmethod
    def tearDownClass(cls):
        rc = cls.daemon.stop()
        cls.origin.close()
        cls.echo.close()
        if rc != 0:
            raise AssertionError("daemon exit code %d" % rc)

    def assert_prohibited(self, reply, host):
        self.assertTrue(reply.startswith(b"HTTP/1.1 403 Destination not allowed\r\n"), reply)
        status = header(reply, "Proxy-Status")
        self.assertIn("error=destination_ip_prohibited", status)
        self.assertIn("%s resolves only to private addresses (127.0.0.1)" % host, status)
        self.assertIn("access.deny_private_destinations", status)

    def test_name_resolving_to_loopback_is_refused_for_connect(self):
        reply = raw_exchange(self.daemon.port, ("CONNECT evil.test:%d HTTP/1.1\r\n"
                                                "Host: evil.test\r\n\r\n"
                                                % self.echo.port).encode())
        self.assert_prohibited(reply, "evil.test")
        rec = self.daemon.wait_for_decision(
            lambda r: r.get("method") == "CONNECT" and r.get("host") == "evil.test")[0]
        self.assertEqual(rec["status"], 403)
        self.assertIn("destination_ip_prohibited", rec["proxy_status"])

    def test_name_resolving_to_loopback_is_refused_for_forwarding(self):
        reply = raw_exchange(self.daemon.port, ("GET http://evil.test:%d/x HTTP/1.1\r\n"
                                                "Host: evil.test\r\n\r\n"
                                                % self.origin.port).encode())
        self.assert_prohibited(reply, "evil.test")
        self.assertFalse(any(r["path"] == "/x" for r in self.origin.requests))

    def test_ip_literal_is_refused_too(self):
        reply = raw_exchange(self.daemon.port, ("GET http://127.0.0.1:%d/lit HTTP/1.1\r\n"
                                                "Host: x\r\n\r\n" % self.origin.port).encode())
        self.assert_prohibited(reply, "127.0.0.1")
        reply = raw_exchange(self.daemon.port, ("CONNECT 127.0.0.1:%d HTTP/1.1\r\n"
                                                "Host: 127.0.0.1\r\n\r\n"
                                                % self.echo.port).encode())
        self.assert_prohibited(reply, "127.0.0.1")

    def test_rule_with_allow_private_is_exempt(self):
        r = curl("http://trusted.test:%d/t" % self.origin.port, proxy=self.daemon.proxy_url)
        self.assertEqual(r.stdout, "hello /t\n", r.stderr)
        with socket.create_connection(("127.0.0.1", self.daemon.port), timeout=10) as s:
            s.sendall(("CONNECT trusted.test:%d HTTP/1.1\r\n"
                       "Host: trusted.test\r\n\r\n" % self.echo.port).encode())
            self.assertTrue(recv_until(s, b"\r\n\r\n").startswith(b"HTTP/1.1 200 "))
            s.sendall(b"inside")
            self.assertEqual(recv_until(s, b"inside"), b"inside")
        recs = self.daemon.wait_for_decision(
            lambda r: r.get("rule") == "trusted-internal" and r.get("status") == 200, count=2)
        self.assertEqual(sorted(r["resolved"].split(":")[0] for r in recs),
                         ["127.0.0.1", "127.0.0.1"])


class DenyPrivatePooledConnectionTest(unittest.TestCase):
    def test_pooled_connection_is_checked_again_after_reload(self):
        """A keep-alive connection to the origin, pooled while the policy was
        off, is not reused once a reload switches it on."""
        with Origin() as origin:
            config = proxy_config('resolve: { pool.test: "127.0.0.1" }\n')
            d = Daemon(config=config)
            try:
                url = "http://pool.test:%d/p" % origin.port
                r = curl(url, proxy=d.proxy_url)
                self.assertEqual(r.stdout, "hello /p\n", r.stderr)
                with open(d.config_path, "w") as f:
                    f.write(proxy_config('resolve: { pool.test: "127.0.0.1" }\n',
                                         access_extra="  deny_private_destinations: true\n"))
                mark = d.log_index()
                d.send_signal(signal.SIGHUP)
                d.wait_for_log(r"config reloaded \(generation 2\)", start=mark)
                r = curl("-i", url + "?again", proxy=d.proxy_url)
                self.assertRegex(r.stdout, r"^HTTP/1\.1 403 Destination not allowed")
                self.assertEqual([q["path"] for q in origin.requests], ["/p"])
            finally:
                self.assertEqual(d.stop(), 0)


class PerClientLimitTest(unittest.TestCase):
    def test_max_connections_per_client(self):
        with Origin() as origin:
            d = Daemon(config=proxy_config(limits={"max_connections_per_client": 2}))
            try:
                held = []
                for i in range(2):
                    s = socket.create_connection(("127.0.0.1", d.port), timeout=10)
                    s.sendall(("GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % origin.url("/c%d" % i))
                              .encode())
                    self.assertIn(b"hello /c%d" % i, recv_until(s, b"hello /c%d\n" % i))
                    held.append(s)
                with socket.create_connection(("127.0.0.1", d.port), timeout=10) as s:
                    reply = recv_all(s)
                self.assertTrue(reply.startswith(b"HTTP/1.1 503 Too many connections from this "
                                                 b"client\r\n"), reply)
                status = header(reply, "Proxy-Status")
                self.assertIn("error=connection_limit_reached", status)
                self.assertIn("limits.max_connections_per_client (2) reached for 127.0.0.1",
                              status)
                d.wait_for_log(r"refused a connection from 127\.0\.0\.1: "
                               r"limits\.max_connections_per_client reached")
                for s in held:
                    s.close()
                for _ in range(100):
                    r = curl(origin.url("/after"), proxy=d.proxy_url)
                    if r.returncode == 0 and r.stdout == "hello /after\n":
                        break
                else:
                    self.fail("never served again: " + r.stdout + r.stderr)
            finally:
                self.assertEqual(d.stop(), 0)


if __name__ == "__main__":
    unittest.main()
