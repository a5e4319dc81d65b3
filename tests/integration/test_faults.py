"""Fault injection: every way an upstream can fail, met by every way the
daemon reaches an upstream.

One daemon (JSON decision log, admin listener, small timeouts,
deny_private_destinations on) meets FaultOrigin (faults.py) along three
ways: plain http forwarding (absolute form, action direct), CONNECT tunnels
(only the faults a tunnel can see: refused, timeout, private address) and
the mirror action (a rule whose `mirrors:` is the faulty origin, plain or
TLS). Each row of TABLE says what the client must get (status, Proxy-Status
error, whether the body is whole), what the decision-log line must say
(status, attempts, proxy_status, closed_by), which /metrics counters must
move, and whether the faulty origin may be reached at all. After every row
the daemon must still serve a normal request.

ClientThatReadsNothingTest floods a client that reads nothing (a 1 GiB
body, endless 103 interim responses) along each way and checks that the
daemon holds the origin back instead of buffering what it sends.
"""
import os
import socket
import subprocess
import sys
import tempfile
import time
import unittest

from faults import BlackholeListener, FaultOrigin, TestCA, closed_port
from harness import (BIN, Daemon, HttpReply, admin_port, proxy_get, read_reply, recv_until,
                     scrape_metrics)

# Timeouts of the daemon under test: small, so that the timeout rows are
# quick, but far from the drip pace (FaultOrigin waits 3 s between bytes).
LIMITS = {"connect_timeout": "1s", "response_timeout": "2s", "idle_timeout": "1500ms"}

DIRECT = 'switchyard_requests_total{action="direct",rule="fault-direct"}'
DEFAULT = 'switchyard_requests_total{action="direct",rule="default"}'


def mirror_rule_metric(rule):
    return 'switchyard_requests_total{action="mirror",rule="%s"}' % rule


def attempts_metric(result):
    return 'switchyard_upstream_attempts_total{result="%s"}' % result


class Row:
    """One fault met one way.

    target: a URL (forward, mirror) or an authority (connect), with
      {fault} {closed} {blackhole} {tls} {tls_expired} for the ports.
    status / error: the client's status and Proxy-Status error token
      (None: no Proxy-Status, the origin's own answer passed through).
    whole: the body arrives complete (False: cut short, connection aborted).
    attempts: [(status, error substring, next)] expected in the log line.
    closed_by: the decision line's closed_by.
    metrics: counters that must have grown by one.
    reached: the faulty origin `origin` ("fault", "tls", "tls_expired") sees
      the request ("request"), is connected to but never sent the request
      ("no-request": a TLS peer that failed verification), is never even
      connected to ("no-connect"), or either (None).
    """

    def __init__(self, way, fault, target, status, error=None, whole=True, attempts=(),
                 closed_by=None, metrics=(), reached=None, origin="fault"):
        self.way = way
        self.fault = fault
        self.target = target
        self.status = status
        self.error = error
        self.whole = whole
        self.attempts = list(attempts)
        self.closed_by = closed_by
        self.metrics = list(metrics)
        self.reached = reached
        self.origin = origin

    @property
    def name(self):
        return "%s_%s" % (self.way, self.fault.replace("-", "_"))


def forward(fault, path, status, error=None, whole=True, closed_by="proxy", host="fault.test",
            port="{fault}", metric=DIRECT, reached=None):
    # A forwarded request makes one attempt, at the origin: served (its
    # answer passed on, with an error when it was cut short) or stopped (our
    # own error answer). A destination our policy refuses makes none.
    if error == "destination_ip_prohibited":
        attempts, metrics = (), [metric]
    elif error is None:
        attempts = [(status, None if whole else "cut short", "served")]
        metrics = [metric, attempts_metric("served")]
    else:
        attempts, metrics = [(None, "", "stopped")], [metric, attempts_metric("transport_error")]
    return Row("forward", fault, "http://%s:%s%s" % (host, port, path), status, error, whole,
               attempts=attempts, closed_by=closed_by, metrics=metrics, reached=reached)


def connect(fault, authority, status, error, closed_by="proxy", metric=DIRECT, reached=None):
    return Row("connect", fault, authority, status, error, whole=True, closed_by=closed_by,
               metrics=[metric], reached=reached)


def mirror(fault, host, path, status, error=None, whole=True, attempt=None, result=None,
           closed_by="proxy", rule="fault-mirror", reached=None, origin="fault"):
    return Row("mirror", fault, "http://%s%s" % (host, path), status, error, whole,
               attempts=[attempt], closed_by=closed_by,
               metrics=[mirror_rule_metric(rule), attempts_metric(result)], reached=reached,
               origin=origin)


TABLE = [
    # -- plain http forwarding, action direct ---------------------------------
    forward("ok", "/ok", 200, closed_by="upstream", reached="request"),
    forward("status-403", "/status/403", 403, closed_by="upstream", reached="request"),
    forward("status-404", "/status/404", 404, closed_by="upstream", reached="request"),
    forward("status-410", "/status/410", 410, closed_by="upstream", reached="request"),
    forward("status-500", "/status/500", 500, closed_by="upstream", reached="request"),
    forward("refused", "/ok", 502, "connection_refused", port="{closed}"),
    forward("connect-timeout", "/ok", 504, "connection_timeout", port="{blackhole}"),
    forward("garbage", "/garbage", 502, "http_protocol_error", reached="request"),
    forward("reset-before-head", "/reset-head", 502, "connection_terminated", reached="request"),
    forward("reset-mid-body", "/reset", 200, whole=False, closed_by="upstream", reached="request"),
    forward("no-response", "/silent", 504, "connection_read_timeout", reached="request"),
    forward("slow-drip-head", "/drip-head", 504, "connection_read_timeout", reached="request"),
    forward("slow-drip-body", "/drip-body", 200, whole=False, closed_by="proxy", reached="request"),
    forward("truncated-chunked", "/truncated-chunked", 200, whole=False, closed_by="upstream",
            reached="request"),
    forward("bad-chunk-size", "/bad-chunk", 200, whole=False, closed_by="upstream",
            reached="request"),
    forward("header-1mib", "/big-header", 502, "http_response_header_section_size",
            reached="request"),
    forward("private-loopback", "/ok", 403, "destination_ip_prohibited", host="loop.test",
            metric=DEFAULT, reached="no-connect"),
    forward("private-metadata", "/ok", 403, "destination_ip_prohibited", host="meta.test",
            port="80", metric=DEFAULT, reached="no-connect"),
    # -- CONNECT tunnels: a tunnel only sees whether a connection opens --------
    connect("ok", "fault.test:{fault}", 200, None, closed_by="upstream", reached="request"),
    connect("refused", "fault.test:{closed}", 502, "connection_refused"),
    connect("connect-timeout", "fault.test:{blackhole}", 504, "connection_timeout"),
    connect("private-loopback", "loop.test:{fault}", 403, "destination_ip_prohibited",
            metric=DEFAULT, reached="no-connect"),
    connect("private-metadata", "meta.test:443", 403, "destination_ip_prohibited",
            metric=DEFAULT, reached="no-connect"),
    # -- action mirror: `mirrors:` is the faulty origin ------------------------
    mirror("ok", "m-plain.test", "/ok", 200, attempt=(200, None, "served"), result="served",
           closed_by="upstream", reached="request"),
    # Not-found class: 404, and 410 answered as 404 (the go command's reading).
    mirror("status-404", "m-plain.test", "/status/404", 404, "destination_not_found",
           attempt=(404, None, "stopped"), result="not_found", reached="request"),
    mirror("status-410", "m-plain.test", "/status/410", 404, "destination_not_found",
           attempt=(410, None, "stopped"), result="not_found", reached="request"),
    mirror("status-403", "m-plain.test", "/status/403", 502, "destination_unavailable",
           attempt=(403, None, "stopped"), result="http_error", reached="request"),
    mirror("status-500", "m-plain.test", "/status/500", 502, "destination_unavailable",
           attempt=(500, None, "stopped"), result="http_error", reached="request"),
    mirror("refused", "m-refused.test", "/ok", 502, "connection_refused",
           attempt=(None, "refused", "stopped"), result="transport_error", rule="refused-mirror"),
    mirror("connect-timeout", "m-timeout.test", "/ok", 504, "connection_timeout",
           attempt=(None, "connect_timeout", "stopped"), result="transport_error",
           rule="timeout-mirror"),
    mirror("garbage", "m-plain.test", "/garbage", 502, "http_protocol_error",
           attempt=(None, "", "stopped"), result="transport_error", reached="request"),
    mirror("reset-before-head", "m-plain.test", "/reset-head", 502, "connection_terminated",
           attempt=(None, "", "stopped"), result="transport_error", reached="request"),
    mirror("reset-mid-body", "m-plain.test", "/reset", 200, whole=False,
           attempt=(200, "aborted after", "served"), result="served", closed_by="upstream",
           reached="request"),
    mirror("no-response", "m-plain.test", "/silent", 504, "connection_read_timeout",
           attempt=(None, "response_timeout", "stopped"), result="transport_error",
           reached="request"),
    mirror("slow-drip-head", "m-plain.test", "/drip-head", 504, "connection_read_timeout",
           attempt=(None, "response_timeout", "stopped"), result="transport_error",
           reached="request"),
    # The daemon's idle timer ends it, so closed_by is "proxy" (as forwarding
    # logs it); MirrorExchange::onMirrorAborted logs "upstream" for any abort.
    mirror("slow-drip-body", "m-plain.test", "/drip-body", 200, whole=False,
           attempt=(200, "idle_timeout", "served"), result="served", closed_by="proxy",
           reached="request"),
    mirror("truncated-chunked", "m-plain.test", "/truncated-chunked", 200, whole=False,
           attempt=(200, "aborted after", "served"), result="served", closed_by="upstream",
           reached="request"),
    mirror("bad-chunk-size", "m-plain.test", "/bad-chunk", 200, whole=False,
           attempt=(200, "aborted after", "served"), result="served", closed_by="upstream",
           reached="request"),
    mirror("header-1mib", "m-plain.test", "/big-header", 502, "http_response_header_section_size",
           attempt=(None, "", "stopped"), result="transport_error", reached="request"),
    # TLS: tls.upstream_ca_file is the test CA, which signed every leaf.
    mirror("tls-good-ca", "m-tls-good.test", "/ok", 200, attempt=(200, None, "served"),
           result="served", closed_by="upstream", rule="tls-good-mirror", reached="request",
           origin="tls"),
    mirror("tls-wrong-name", "m-tls-wrong.test", "/ok", 502, "tls_certificate_error",
           attempt=(None, "", "stopped"), result="transport_error", rule="tls-wrong-mirror",
           reached="no-request", origin="tls"),
    mirror("tls-expired", "m-tls-expired.test", "/ok", 502, "tls_certificate_error",
           attempt=(None, "expired", "stopped"), result="transport_error",
           rule="tls-expired-mirror", reached="no-request", origin="tls_expired"),
    # The policy guards the `direct` entry (the host the client chose);
    # mirror_fetch.h: a walk that fails on anything but not-found/timeout is 502.
    mirror("private-loopback", "m-loop.test:{fault}", "/ok", 502, "destination_ip_prohibited",
           attempt=(None, "private addresses", "stopped"), result="transport_error",
           rule="private-mirror", reached="no-connect"),
    mirror("private-metadata", "m-meta.test", "/ok", 502, "destination_ip_prohibited",
           attempt=(None, "private addresses", "stopped"), result="transport_error",
           rule="private-mirror", reached="no-connect"),
]


def build_config(ca_dir, upstream_ca, ports):
    mirrors = [
        ("fault-mirror", "m-plain.test", "http://127.0.0.1:%d" % ports["fault"]),
        ("refused-mirror", "m-refused.test", "http://127.0.0.1:%d" % ports["closed"]),
        ("timeout-mirror", "m-timeout.test", "http://127.0.0.1:%d" % ports["blackhole"]),
        ("tls-good-mirror", "m-tls-good.test", "https://good.test:%d" % ports["tls"]),
        ("tls-wrong-mirror", "m-tls-wrong.test", "https://wrong.test:%d" % ports["tls"]),
        ("tls-expired-mirror", "m-tls-expired.test",
         "https://expired.test:%d" % ports["tls_expired"]),
        ("private-mirror", "m-loop.test, m-meta.test", "direct"),
    ]
    text = "log: { level: info, format: json, decisions: stderr }\n"
    text += 'admin: "127.0.0.1:0"\n'
    text += "inherit_env: false\n"
    text += "access:\n  connect_ports: [443, %d, %d, %d]\n" % (
        ports["fault"], ports["closed"], ports["blackhole"])
    text += "  deny_private_destinations: true\n"
    text += "limits: { %s }\n" % ", ".join("%s: %s" % kv for kv in LIMITS.items())
    text += 'tls: { ca_dir: "%s", upstream_ca_file: "%s" }\n' % (ca_dir, upstream_ca)
    names = {"fault.test": "127.0.0.1", "loop.test": "127.0.0.1", "m-loop.test": "127.0.0.1",
             "meta.test": "169.254.169.254", "m-meta.test": "169.254.169.254",
             "good.test": "127.0.0.1", "wrong.test": "127.0.0.1", "expired.test": "127.0.0.1"}
    text += "resolve: { %s }\n" % ", ".join('"%s": "%s"' % kv for kv in names.items())
    text += "rules:\n"
    text += ('  - name: fault-direct\n    match: { hosts: "fault.test" }\n'
             "    action: direct\n    allow_private: true\n")
    for name, hosts, url in mirrors:
        text += ('  - name: %s\n    match: { hosts: "%s" }\n    action: mirror\n'
                 '    mirrors: "%s"\n    intercept: true\n' % (name, hosts, url))
    return text


class FaultTableTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="sy-faults-")
        ca_dir = os.path.join(cls.tmp.name, "ca")
        subprocess.run([BIN, "ca", "init", "--dir", ca_dir], check=True, capture_output=True)
        test_ca = TestCA(os.path.join(cls.tmp.name, "upstream"))
        cls.fault = FaultOrigin()
        # good.test's leaf also answers for wrong.test: a valid chain, the wrong name.
        cls.tls = FaultOrigin(tls=test_ca.leaf("good.test"))
        cls.tls_expired = FaultOrigin(tls=test_ca.leaf("expired.test", expired=True))
        cls.blackhole = BlackholeListener()
        cls.ports = {"fault": cls.fault.port, "closed": closed_port(),
                     "blackhole": cls.blackhole.port, "tls": cls.tls.port,
                     "tls_expired": cls.tls_expired.port}
        cls.daemon = Daemon(config=build_config(ca_dir, test_ca.cert, cls.ports))
        cls.admin = admin_port(cls.daemon)
        cls.origins = {"fault": cls.fault, "tls": cls.tls, "tls_expired": cls.tls_expired}

    @classmethod
    def tearDownClass(cls):
        rc = cls.daemon.stop()
        lines = list(cls.daemon.lines)
        for server in (cls.fault, cls.tls, cls.tls_expired, cls.blackhole):
            server.close()
        cls.tmp.cleanup()
        if rc != 0:
            raise AssertionError("daemon exit code %d:\n%s" % (rc, "\n".join(lines[-50:])))

    def setUp(self):
        self.assertIsNone(self.daemon.proc.poll(), "the daemon died in an earlier row")

    # ---- Carrying out one row.

    def request(self, row, target):
        if row.way == "connect":
            return self.tunnel(target)
        return proxy_get(self.daemon.port, target)

    def tunnel(self, authority):
        """CONNECT; on success, GET /ok through the tunnel (to FaultOrigin)."""
        with socket.create_connection(("127.0.0.1", self.daemon.port), timeout=20) as s:
            s.sendall(("CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (authority, authority))
                      .encode())
            head = recv_until(s, b"\r\n\r\n", deadline=20)
            if not head.startswith(b"HTTP/1.1 200 "):
                rest = read_reply(s)
                return HttpReply(head + rest.raw, rest.reset)
            s.sendall(b"GET /ok?through-tunnel HTTP/1.1\r\nHost: fault\r\n\r\n")
            inner = read_reply(s)
            self.assertEqual(inner.status, 200, inner.raw)
            self.assertTrue(inner.complete, inner.raw)
            return HttpReply(head, False)

    def decision_for(self, row, target):
        if row.way == "connect":
            def pred(r):
                return r.get("method") == "CONNECT" and r.get("target") == target
        else:
            def pred(r):
                return r.get("target") == target
        return self.daemon.wait_for_decision(pred, deadline=30)[0]

    def run_row(self, row):
        case = "?case=" + row.name
        target = row.target.format(**self.ports)
        if row.way != "connect":
            target += case
        before = scrape_metrics(self.admin)
        origin = self.origins[row.origin]
        seen_before = origin.counts()
        reply = self.request(row, target)

        # What the client got.
        self.assertEqual(reply.status, row.status, reply.raw[:600])
        self.assertEqual(reply.proxy_error(), row.error, reply.raw[:600])
        if row.error is not None:
            self.assertIn("text/plain", reply.headers.get("content-type", ""))
        self.assertEqual(reply.complete, row.whole, reply.raw[:600])

        # The decision-log line.
        rec = self.decision_for(row, target)
        self.assertEqual(rec["status"], row.status, rec)
        if row.error is None:
            self.assertEqual(rec["proxy_status"], "", rec)
        else:
            self.assertIn("error=" + row.error, rec["proxy_status"], rec)
        self.assertEqual(rec["closed_by"], row.closed_by, rec)
        self.assertEqual(len(rec["attempts"]), len(row.attempts), rec)
        for got, (status, error, nxt) in zip(rec["attempts"], row.attempts):
            self.assertEqual(got["status"], status, rec)
            self.assertEqual(got["next"], nxt, rec)
            if error is None:
                self.assertIsNone(got["error"], rec)
            else:
                self.assertIsNotNone(got["error"], rec)
                self.assertIn(error, got["error"], rec)
        if row.reached == "no-connect" and row.error == "destination_ip_prohibited":
            # Refused on the resolved address, before any connect.
            self.assertEqual(rec["resolved"], "", rec)

        # The counters.
        after = scrape_metrics(self.admin)
        for sample in row.metrics:
            self.assertEqual(after.get(sample, 0) - before.get(sample, 0), 1,
                             "%s did not move by 1" % sample)

        # Did the faulty origin see it?
        seen_after = origin.counts()
        if row.reached == "request":
            self.assertGreater(seen_after[1], seen_before[1], "the origin never saw the request")
        if row.reached == "no-request":
            self.assertGreater(seen_after[0], seen_before[0], "the daemon never connected")
            self.assertEqual(seen_after[1], seen_before[1],
                             "the request went to an unverified peer")
        if row.reached == "no-connect":
            self.assertEqual(seen_after[0], seen_before[0], "the daemon connected to the origin")

        if os.environ.get("FAULTS_TABLE"):
            # A row of the table in the report: what was seen, not asserted.
            sys.stderr.write("\n| %s | %s | %s %s | %s | %s | %s | %s |" % (
                row.way, row.fault, reply.status, "whole" if reply.complete else "cut",
                row.error or "-", rec["closed_by"],
                "; ".join("%s/%s/%s" % (a["status"], (a["error"] or "-")[:40], a["next"])
                          for a in rec["attempts"]) or "-",
                ", ".join("%s+1" % m.split("{")[1].rstrip("}") for m in row.metrics)))

        # And the daemon still serves.
        normal = proxy_get(self.daemon.port, "http://fault.test:%d/ok?after=%s"
                           % (self.fault.port, row.name))
        self.assertEqual(normal.status, 200, normal.raw[:600])
        self.assertTrue(normal.complete, normal.raw[:600])


class ClientThatReadsNothingTest(unittest.TestCase):
    """Backpressure: whatever an origin sends for a client that reads
    nothing, the daemon holds back the origin (or cuts it off) instead of
    buffering it. Bounded by socket buffers and the exchanges' high-water
    marks, the origin gets rid of ~6 MiB on loopback; FLOOD_BOUND leaves room.
    (A mirror ignores interim responses, so it has no interim row.)"""

    FLOOD_LIMIT = 24 << 20  # what a flood behaviour sends at most
    FLOOD_BOUND = 16 << 20
    CASES = [("forward", "body-flood"), ("forward", "interim-flood"),
             ("connect", "body-flood"), ("mirror", "body-flood")]

    def test_the_origin_is_held_back(self):
        tmp = tempfile.TemporaryDirectory(prefix="sy-flood-")
        ca_dir = os.path.join(tmp.name, "ca")
        subprocess.run([BIN, "ca", "init", "--dir", ca_dir], check=True, capture_output=True)
        origin = FaultOrigin()
        origin.flood_limit = self.FLOOD_LIMIT
        d = Daemon(config=(
            "log: { level: info, format: json, decisions: stderr }\n"
            "inherit_env: false\nlimits: { drain_timeout: 1s }\n"
            "access:\n  connect_ports: [%d]\n" % origin.port +
            'tls: { ca_dir: "%s" }\n' % ca_dir +
            'rules:\n  - name: flood-mirror\n    match: { hosts: "m-flood.test" }\n'
            '    action: mirror\n    mirrors: "http://127.0.0.1:%d"\n'
            "    intercept: true\n" % origin.port))
        try:
            for way, fault in self.CASES:
                with self.subTest(way=way, fault=fault):
                    origin.pushed = 0
                    origin.flood_done.clear()
                    s = socket.create_connection(("127.0.0.1", d.port), timeout=10)
                    try:
                        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
                        self.send_flood_request(s, way, fault, origin)
                        pushed = wait_for_stall(origin)
                        # The flood did flow (the request reached the origin)...
                        # an interim flood is cut off after
                        # ForwardExchange::kMaxInterimResponses heads.
                        self.assertGreater(pushed, 1 << 20 if fault != "interim-flood" else 1000)
                        # ...and was held back.
                        self.assertLess(pushed, self.FLOOD_BOUND,
                                        "%s %s: the daemon took %.1f MiB for a client that "
                                        "reads nothing" % (way, fault, pushed / 2.0**20))
                    finally:
                        s.close()
                    normal = proxy_get(d.port, origin.url("/ok"))
                    self.assertEqual(normal.status, 200, normal.raw[:300])
        finally:
            rc = d.stop()
            origin.close()
            tmp.cleanup()
            self.assertEqual(rc, 0)

    @staticmethod
    def send_flood_request(s, way, fault, origin):
        if way == "forward":
            s.sendall(("GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % origin.url("/" + fault)).encode())
        elif way == "mirror":
            s.sendall(("GET http://m-flood.test/%s HTTP/1.1\r\nHost: m-flood.test\r\n\r\n"
                       % fault).encode())
        else:
            target = "127.0.0.1:%d" % origin.port
            s.sendall(("CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (target, target)).encode())
            head = recv_until(s, b"\r\n\r\n")
            if not head.startswith(b"HTTP/1.1 200 "):
                raise AssertionError("CONNECT answered %r" % head)
            s.sendall(("GET /%s HTTP/1.1\r\nHost: x\r\n\r\n" % fault).encode())


def wait_for_stall(origin, quiet=1.0, deadline=60.0):
    """Waits until a flood behaviour ended or made no progress for `quiet`
    seconds; returns the bytes it pushed."""
    end = time.monotonic() + deadline
    last, since = -1, time.monotonic()
    while not origin.flood_done.is_set():
        now = time.monotonic()
        if origin.pushed != last:
            last, since = origin.pushed, now
        elif now - since >= quiet:
            break
        if now > end:
            raise AssertionError("the flood neither ended nor stalled")
        time.sleep(0.05)
    return origin.pushed


def _make_test(row):
    def test(self):
        self.run_row(row)
    test.__doc__ = "%s: %s -> %s %s" % (row.way, row.fault, row.status, row.error or "")
    return test


for _row in TABLE:
    setattr(FaultTableTest, "test_" + _row.name, _make_test(_row))


if __name__ == "__main__":
    unittest.main()
