"""The admin listener (`admin:`): /healthz, /readyz, /metrics, /explain and
/proxy.pac through a real daemon, driven by curl.

/metrics is checked by value: after a known set of proxied requests each
counter says exactly how many there were. /explain is compared with the CLI
on the same file, /readyz with a drain in progress, and the reload gauges
with a good and a bad SIGHUP.
"""
import json
import os
import re
import signal
import socket
import subprocess
import time
import unittest

from harness import (BIN, Daemon, Origin, TcpServer, curl, proxy_config, raw_exchange,
                     recv_all, recv_until)

RULES = """\
rules:
  - name: no-blocked
    match: { hosts: "blocked.test" }
    action: deny
  - name: origin-direct
    match: { hosts: "127.0.0.1" }
    action: direct
"""


def admin_config(extra="", admin="127.0.0.1:0", access_extra="", connect_ports=(443,), limits=None):
    return (proxy_config(RULES + extra, connect_ports=connect_ports, access_extra=access_extra,
                         limits=limits)
            + 'admin: "%s"\n' % admin)


def admin_address(d):
    m = d.wait_for_log(r"admin listening on (\S+):(\d+)")
    return m.group(1), int(m.group(2))


def admin_get(d, path, *args):
    """curl -i against the admin listener; returns (status, headers, body)."""
    host, port = admin_address(d)
    r = curl("-i", *args, "http://%s:%d%s" % (host, port, path))
    if r.returncode != 0:
        raise AssertionError("curl %s: %s" % (path, r.stderr))
    # curl() reads text, so "\r\n" arrives as "\n".
    head, _, body = r.stdout.partition("\n\n")
    status = int(head.split(" ", 2)[1])
    headers = {}
    for line in head.split("\n")[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    return status, headers, body


def metric(text, name):
    """The value of the sample `name` (with its labels, exactly as rendered)."""
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line[len(name) + 1:])
    return None


def wait_metric(d, name, value, deadline=20.0):
    """Polls /metrics until `name` equals `value` (gauges move when handles
    close, a moment after the decision line); returns the last scrape."""
    end = time.monotonic() + deadline
    while True:
        _, _, text = admin_get(d, "/metrics")
        if metric(text, name) == value:
            return text
        if time.monotonic() > end:
            raise AssertionError("%s never became %s:\n%s" % (name, value, text))
        time.sleep(0.05)


def echo(conn):
    while True:
        b = conn.recv(65536)
        if not b:
            return
        conn.sendall(b)


class AdminEndpointsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.origin = Origin()
        cls.echo = TcpServer(echo)
        cls.daemon = Daemon(config=admin_config(connect_ports=(443, cls.echo.port)))

    @classmethod
    def tearDownClass(cls):
        rc = cls.daemon.stop()
        cls.origin.close()
        cls.echo.close()
        if rc != 0:
            raise AssertionError("daemon exit code %d" % rc)

    def test_admin_line_comes_after_the_proxy_listener(self):
        admin_address(self.daemon)  # waits for the line
        lines = list(self.daemon.lines)
        proxy = next(i for i, l in enumerate(lines) if re.search(r"listening on", l))
        admin = next(i for i, l in enumerate(lines) if "admin listening on" in l)
        self.assertLess(proxy, admin)
        self.assertNotIn("admin", lines[proxy])
        self.assertNotEqual(admin_address(self.daemon)[1], self.daemon.port)

    def test_healthz_and_readyz(self):
        status, headers, body = admin_get(self.daemon, "/healthz")
        self.assertEqual((status, body), (200, "ok\n"))
        self.assertEqual(headers["cache-control"], "no-store")
        self.assertEqual(headers["connection"], "close")
        status, _, body = admin_get(self.daemon, "/readyz")
        self.assertEqual((status, body), (200, "ready\n"))

    def test_head_and_other_methods(self):
        status, headers, body = admin_get(self.daemon, "/healthz", "-I")
        self.assertEqual((status, body), (200, ""))
        self.assertEqual(headers["content-length"], "3")
        status, headers, _ = admin_get(self.daemon, "/metrics", "-X", "POST", "-d", "x=1")
        self.assertEqual(status, 405)
        self.assertEqual(headers["allow"], "GET, HEAD")
        status, _, body = admin_get(self.daemon, "/nope")
        self.assertEqual(status, 404)
        self.assertIn("/metrics", body)

    def test_malformed_and_oversized_requests(self):
        host, port = admin_address(self.daemon)
        reply = raw_exchange(port, b"GET /healthz HTTP/1.1\r\nBad Header\r\n\r\n", host=host)
        self.assertTrue(reply.startswith(b"HTTP/1.1 400 "), reply)
        reply = raw_exchange(port, b"GET /healthz HTTP/1.1\r\nX: " + b"a" * 9000 + b"\r\n\r\n",
                             host=host)
        self.assertTrue(reply.startswith(b"HTTP/1.1 431 "), reply)
        reply = raw_exchange(port, b"GET /" + b"u" * 9000 + b" HTTP/1.1\r\n\r\n", host=host)
        self.assertTrue(reply.startswith(b"HTTP/1.1 414 "), reply)
        for version in (b"HTTP/2.0", b"HTTP/9.9", b"HTTP/0.9"):
            reply = raw_exchange(port, b"GET /healthz " + version + b"\r\n\r\n", host=host)
            self.assertTrue(reply.startswith(b"HTTP/1.1 505 "), (version, reply))
        reply = raw_exchange(port, b"GET /healthz HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
                             host=host)
        self.assertTrue(reply.startswith(b"HTTP/1.1 400 "), reply)
        # The listener still answers after all that.
        self.assertEqual(admin_get(self.daemon, "/healthz")[0], 200)

    def test_explain_equals_the_cli(self):
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("GO") and k.lower() not in
               ("http_proxy", "https_proxy", "no_proxy", "all_proxy")}
        for url in ("http://blocked.test/x", "https://example.com/", "127.0.0.1:443",
                    "http://127.0.0.1:8080/a?b=c"):
            with self.subTest(url=url):
                status, headers, body = admin_get(self.daemon, "/explain", "-G",
                                                  "--data-urlencode", "url=" + url)
                self.assertEqual(status, 200, body)
                self.assertEqual(headers["content-type"], "application/json")
                cli = subprocess.run([BIN, "explain", "--json", "--config",
                                      self.daemon.config_path, url],
                                     capture_output=True, text=True, env=env, timeout=30)
                self.assertEqual(cli.returncode, 0, cli.stderr)
                self.assertEqual(json.loads(body), json.loads(cli.stdout))
                self.assertEqual(body, cli.stdout)
        status, _, body = admin_get(self.daemon, "/explain?url=a&url=b")
        self.assertEqual(status, 400)
        self.assertIn("twice", body)

    def test_proxy_pac_names_the_proxy_listener(self):
        status, headers, body = admin_get(self.daemon, "/proxy.pac")
        self.assertEqual(status, 200)
        self.assertEqual(headers["content-type"], "application/x-ns-proxy-autoconfig")
        self.assertIn('"PROXY 127.0.0.1:%d"' % self.daemon.port, body)
        self.assertIn("function FindProxyForURL", body)


class MetricsCountTest(unittest.TestCase):
    """Counters move by exactly the requests the test makes."""

    def test_counters_after_proxied_requests(self):
        with Origin() as origin, TcpServer(echo) as echo_server:
            d = Daemon(config=admin_config(connect_ports=(443, echo_server.port)))
            try:
                _, _, before = admin_get(d, "/metrics")
                self.assertEqual(metric(before, "switchyard_connections_active"), 0)
                self.assertEqual(metric(before, "switchyard_decision_duration_microseconds_count"),
                                 0)
                self.assertIsNone(metric(before,
                                         'switchyard_requests_total{action="deny",rule="no-blocked"}'))
                # 3 CONNECTs denied by a rule.
                for _ in range(3):
                    reply = raw_exchange(d.port, b"CONNECT blocked.test:443 HTTP/1.1\r\n"
                                                 b"Host: blocked.test:443\r\n\r\n")
                    self.assertTrue(reply.startswith(b"HTTP/1.1 403 "), reply)
                # 2 forwarded requests, each a full exchange with the origin.
                for i in range(2):
                    r = curl(origin.url("/m%d" % i), proxy=d.proxy_url)
                    self.assertEqual(r.stdout, "hello /m%d\n" % i, r.stderr)
                # 1 request refused for its port (not a rule).
                reply = raw_exchange(d.port, b"CONNECT 127.0.0.1:1 HTTP/1.1\r\n"
                                             b"Host: 127.0.0.1\r\n\r\n")
                self.assertTrue(reply.startswith(b"HTTP/1.1 403 "), reply)
                # 1 refused because nothing listens there.
                reply = raw_exchange(d.port, ("GET http://127.0.0.1:%d/ HTTP/1.1\r\nHost: x\r\n\r\n"
                                              % closed_port()).encode())
                self.assertTrue(reply.startswith(b"HTTP/1.1 502 "), reply)
                recs = d.wait_for_decision(count=7)
                _, _, text = admin_get(d, "/metrics")
                self.assertEqual(
                    metric(text, 'switchyard_requests_total{action="deny",rule="no-blocked"}'), 3)
                self.assertEqual(
                    metric(text, 'switchyard_requests_total{action="direct",rule="origin-direct"}'),
                    3)  # 2 served, 1 refused by the origin's host
                # The port policy overrides the rule's name, not its action.
                self.assertEqual(
                    metric(text,
                           'switchyard_requests_total{action="direct",rule="access.connect_ports"}'),
                    1)
                total = sum(float(l.rsplit(" ", 1)[1]) for l in text.splitlines()
                            if l.startswith("switchyard_requests_total{"))
                self.assertEqual(total, 7)
                # Bytes each way: exactly the sums of the decision records.
                self.assertEqual(metric(text, 'switchyard_bytes_total{direction="in"}'),
                                 sum(r["bytes_in"] for r in recs))
                self.assertEqual(metric(text, 'switchyard_bytes_total{direction="out"}'),
                                 sum(r["bytes_out"] for r in recs))
                # Every decided request was timed.
                self.assertEqual(metric(text, "switchyard_decision_duration_microseconds_count"), 7)
                self.assertEqual(
                    metric(text, 'switchyard_decision_duration_microseconds_bucket{le="+Inf"}'), 7)
                self.assertEqual(metric(text, "switchyard_log_dropped_lines_total"), 0)
                self.assertEqual(metric(text, "switchyard_config_generation"), 1)
                self.assertEqual(metric(text, "switchyard_config_last_reload_success"), 1)
                # Gauges: one open tunnel is one connection and one tunnel.
                s = socket.create_connection(("127.0.0.1", d.port), timeout=10)
                s.sendall(("CONNECT 127.0.0.1:%d HTTP/1.1\r\n"
                           "Host: 127.0.0.1\r\n\r\n" % echo_server.port).encode())
                self.assertTrue(recv_until(s, b"\r\n\r\n").startswith(b"HTTP/1.1 200 "))
                wait_metric(d, "switchyard_connections_active", 1)
                wait_metric(d, "switchyard_tunnels_active", 1)
                s.sendall(b"ping")
                self.assertEqual(recv_until(s, b"ping"), b"ping")
                s.close()
                d.wait_for_decision(lambda r: r.get("method") == "CONNECT" and r["status"] == 200)
                wait_metric(d, "switchyard_connections_active", 0)
                text = wait_metric(d, "switchyard_tunnels_active", 0)
                self.assertEqual(
                    metric(text, 'switchyard_requests_total{action="direct",rule="origin-direct"}'),
                    4)
            finally:
                self.assertEqual(d.stop(), 0)

    def test_upstream_attempts_through_a_parent(self):
        with Origin() as origin:
            # The parent reaches the origin by a name only it resolves.
            parent = Daemon(config=proxy_config('resolve: { parent.test: "127.0.0.1" }\n'))
            d = Daemon(config=admin_config(
                "  - name: via-parent\n    match: { hosts: \"parent.test\" }\n"
                "    action: upstream\n    upstream: \"http://127.0.0.1:%d\"\n" % parent.port))
            try:
                r = curl("http://parent.test:%d/p" % origin.port, proxy=d.proxy_url)
                self.assertEqual(r.stdout, "hello /p\n", r.stderr)
                d.wait_for_decision(lambda r: r.get("rule") == "via-parent")
                _, _, text = admin_get(d, "/metrics")
                self.assertEqual(metric(text, 'switchyard_upstream_attempts_total{result="served"}'),
                                 1)
                self.assertEqual(
                    metric(text, 'switchyard_requests_total{action="upstream",rule="via-parent"}'), 1)
            finally:
                self.assertEqual(d.stop(), 0)
                self.assertEqual(parent.stop(), 0)


def closed_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class ReloadMetricsTest(unittest.TestCase):
    def test_reload_success_and_failure(self):
        d = Daemon(config=admin_config())
        try:
            _, _, text = admin_get(d, "/metrics")
            self.assertEqual(metric(text, "switchyard_config_generation"), 1)
            self.assertEqual(metric(text, "switchyard_config_last_reload_success"), 1)
            first_ts = metric(text, "switchyard_config_last_reload_timestamp_seconds")
            self.assertGreater(first_ts, 1.6e9)

            with open(d.config_path, "w") as f:
                f.write("access: { connect_ports: [not-a-port] }\n")
            mark = d.log_index()
            d.send_signal(signal.SIGHUP)
            d.wait_for_log(r"config reload failed", start=mark)
            _, _, text = admin_get(d, "/metrics")
            self.assertEqual(metric(text, "switchyard_config_generation"), 1)
            self.assertEqual(metric(text, "switchyard_config_last_reload_success"), 0)
            self.assertGreaterEqual(
                metric(text, "switchyard_config_last_reload_timestamp_seconds"), first_ts)

            with open(d.config_path, "w") as f:
                f.write(admin_config())
            mark = d.log_index()
            d.send_signal(signal.SIGHUP)
            d.wait_for_log(r"config reloaded \(generation 2\)", start=mark)
            _, _, text = admin_get(d, "/metrics")
            self.assertEqual(metric(text, "switchyard_config_generation"), 2)
            self.assertEqual(metric(text, "switchyard_config_last_reload_success"), 1)
            # /explain answers from the new generation.
            status, _, body = admin_get(d, "/explain?url=http%3A%2F%2Fblocked.test%2F")
            self.assertEqual(status, 200)
            self.assertEqual(json.loads(body)["config_gen"], 2)
        finally:
            self.assertEqual(d.stop(), 0)


class ReadyzDrainTest(unittest.TestCase):
    def test_readyz_503_while_draining(self):
        with TcpServer(echo) as echo_server:
            d = Daemon(config=admin_config(connect_ports=(echo_server.port,),
                                           limits={"drain_timeout": "20s"}))
            host, port = admin_address(d)
            self.assertEqual(admin_get(d, "/readyz")[0], 200)
            tunnel = socket.create_connection(("127.0.0.1", d.port), timeout=10)
            tunnel.sendall(("CONNECT 127.0.0.1:%d HTTP/1.1\r\n"
                            "Host: 127.0.0.1\r\n\r\n" % echo_server.port).encode())
            self.assertTrue(recv_until(tunnel, b"\r\n\r\n").startswith(b"HTTP/1.1 200 "))
            mark = d.log_index()
            d.send_signal(signal.SIGTERM)
            d.wait_for_log(r"draining 1 open connection", start=mark)
            status, _, body = admin_get(d, "/readyz")
            self.assertEqual((status, body), (503, "not ready\n"))
            # Liveness is unaffected, and the proxy port no longer accepts.
            self.assertEqual(admin_get(d, "/healthz")[0], 200)
            with self.assertRaises(OSError):
                socket.create_connection(("127.0.0.1", d.port), timeout=5).close()
            # The tunnel still works until it ends; then the daemon exits 0
            # and the admin port is gone too.
            tunnel.sendall(b"still")
            self.assertEqual(recv_until(tunnel, b"still"), b"still")
            tunnel.close()
            self.assertEqual(d.proc.wait(20), 0)
            self.assertEqual(d.stop(), 0)
            with self.assertRaises(OSError):
                socket.create_connection((host, port), timeout=5).close()


class AdminAccessTest(unittest.TestCase):
    def test_client_outside_admin_allow_clients_gets_403(self):
        d = Daemon(config=admin_config(access_extra='  admin_allow_clients: ["10.0.0.0/8"]\n'))
        try:
            status, headers, body = admin_get(d, "/metrics")
            self.assertEqual(status, 403)
            self.assertIn("admin_allow_clients", body)
            self.assertNotIn("switchyard_", body)
            d.wait_for_log(r"admin: refused 127\.0\.0\.1:\d+: not in access\.admin_allow_clients")
            # The proxy port is not affected by the admin list.
            reply = raw_exchange(d.port, b"GET http://blocked.test/ HTTP/1.1\r\nHost: b\r\n\r\n")
            self.assertTrue(reply.startswith(b"HTTP/1.1 403 Denied by rule no-blocked"), reply)
        finally:
            self.assertEqual(d.stop(), 0)

    def test_ipv6_admin_listener(self):
        d = Daemon(config=admin_config(admin="[::1]:0"))
        try:
            m = d.wait_for_log(r"admin listening on \[::1\]:(\d+)")
            r = curl("-sS", "http://[::1]:%s/healthz" % m.group(1))
            self.assertEqual(r.stdout, "ok\n", r.stderr)
        finally:
            self.assertEqual(d.stop(), 0)

    def test_admin_bind_failure_exits_1(self):
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen(1)
            port = taken.getsockname()[1]
            # The daemon binds its proxy port, then refuses to run without
            # its admin listener.
            d = Daemon(config=admin_config(admin="127.0.0.1:%d" % port))
            d.wait_for_log(r"admin listener 127\.0\.0\.1:%d: address already in use" % port)
            self.assertEqual(d.proc.wait(20), 1)
            d.stop()


if __name__ == "__main__":
    unittest.main()
