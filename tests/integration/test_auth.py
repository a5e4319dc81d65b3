"""Proxy authentication (`access.users_file`) end to end: a users file made by
`switchyard passwd` (password on stdin), a real daemon, and curl with
--proxy-user (right, wrong, missing) for plain http and for CONNECT.

Also: origin-form requests (the GOPROXY door) answer 401 + WWW-Authenticate
and read Authorization; each request of a keep-alive connection brings its
own credentials; Proxy-Authorization is neither forwarded nor logged; the
file is read at start and on SIGHUP, and a broken one is refused.
"""
import base64
import json
import os
import signal
import socket
import subprocess
import tempfile
import unittest

from harness import (BIN, Daemon, Origin, TcpServer, curl, proxy_config, raw_exchange,
                     recv_until)

PASSWORD = "correct horse"
SECRETS = (PASSWORD, "not-the-password", base64.b64encode(b"alice:" + PASSWORD.encode()).decode(),
           base64.b64encode(b"alice:not-the-password").decode())


def passwd(path, user, password):
    r = subprocess.run([BIN, "passwd", "--file", path, user], input=password + "\n",
                       capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        raise AssertionError("switchyard passwd failed: " + r.stderr)


def basic(user, password):
    return "Basic " + base64.b64encode(("%s:%s" % (user, password)).encode()).decode()


def echo(conn):
    while True:
        b = conn.recv(65536)
        if not b:
            return
        conn.sendall(b)


def read_response(f):
    """Reads one response (head and Content-Length body) from a buffered
    reader of a keep-alive socket; returns (status, body)."""
    status = int(f.readline().split(b" ", 2)[1])
    length = 0
    while True:
        line = f.readline()
        if line in (b"\r\n", b""):
            break
        k, _, v = line.decode("latin-1").partition(":")
        if k.strip().lower() == "content-length":
            length = int(v)
    return status, f.read(length)


def header(reply, name):
    head = reply.split(b"\r\n\r\n", 1)[0].decode("latin-1")
    for line in head.split("\r\n")[1:]:
        k, _, v = line.partition(":")
        if k.strip().lower() == name.lower():
            return v.strip()
    return None


class ProxyAuthTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="sy-auth-it-")
        cls.users = os.path.join(cls.tmp.name, "users")
        passwd(cls.users, "alice", PASSWORD)
        cls.origin = Origin()
        cls.echo = TcpServer(echo)
        cls.daemon = Daemon(config=proxy_config(
            connect_ports=(cls.echo.port,),
            access_extra='  users_file: "%s"\n' % cls.users) + 'admin: "127.0.0.1:0"\n')

    @classmethod
    def tearDownClass(cls):
        rc = cls.daemon.stop()
        cls.origin.close()
        cls.echo.close()
        cls.tmp.cleanup()
        if rc != 0:
            raise AssertionError("daemon exit code %d" % rc)

    def assert_no_secrets_logged(self):
        text = "\n".join(self.daemon.lines)
        for secret in SECRETS:
            self.assertNotIn(secret, text)

    def test_plain_http_missing_wrong_right(self):
        cases = [
            ("missing", None, 407),
            ("wrong", "alice:not-the-password", 407),
            ("unknown", "mallory:" + PASSWORD, 407),
            ("right", "alice:" + PASSWORD, 200),
        ]
        for name, user, status in cases:
            with self.subTest(case=name):
                args = ["-i", self.origin.url("/headers?" + name)]
                if user:
                    args = ["--proxy-user", user] + args
                r = curl(*args, proxy=self.daemon.proxy_url)
                self.assertEqual(r.returncode, 0, r.stderr)
                self.assertRegex(r.stdout, r"^HTTP/1\.1 %d " % status)
                rec = self.daemon.wait_for_decision(
                    lambda d, n=name: d.get("target", "").endswith("?" + n))[0]
                self.assertEqual(rec["status"], status)
                if status == 407:
                    self.assertIn('Proxy-Authenticate: Basic realm="switchyard"', r.stdout)
                    self.assertRegex(r.stdout, r"Proxy-Status: switchyard; "
                                               r"error=http_request_denied")
                    self.assertEqual(rec["user"], "")
                    self.assertEqual(rec["rule"], "access.users_file")
                    self.assertIn("http_request_denied", rec["proxy_status"])
                else:
                    self.assertEqual(rec["user"], "alice")
                    # The origin saw neither our credentials nor the field.
                    body = r.stdout.split("\n\n", 1)[1]
                    names = [k.lower() for k, _ in json.loads(body)]
                    self.assertNotIn("proxy-authorization", names)
        self.assert_no_secrets_logged()

    def test_connect_missing_wrong_right(self):
        for name, user, expect in ((None, None, "407"), ("wrong", "alice:not-the-password", "407"),
                                   ("right", "alice:" + PASSWORD, "200")):
            with self.subTest(user=name):
                with socket.create_connection(("127.0.0.1", self.daemon.port), timeout=10) as s:
                    head = "CONNECT 127.0.0.1:%d HTTP/1.1\r\nHost: 127.0.0.1\r\n" % self.echo.port
                    if user:
                        u, _, p = user.partition(":")
                        head += "Proxy-Authorization: %s\r\n" % basic(u, p)
                    s.sendall((head + "\r\n").encode())
                    reply = recv_until(s, b"\r\n\r\n")
                    self.assertTrue(reply.startswith(("HTTP/1.1 %s " % expect).encode()), reply)
                    if expect == "200":
                        s.sendall(b"through")
                        self.assertEqual(recv_until(s, b"through"), b"through")
                    else:
                        self.assertEqual(header(reply, "Proxy-Authenticate"),
                                         'Basic realm="switchyard", charset="UTF-8"')
        recs = self.daemon.wait_for_decision(
            lambda d: d.get("method") == "CONNECT" and d.get("status") == 200)
        self.assertEqual(recs[0]["user"], "alice")
        self.assert_no_secrets_logged()

    def test_curl_connect_with_proxy_user(self):
        url = "http://127.0.0.1:%d/" % self.echo.port
        # curl's -p forces a CONNECT tunnel even for http://.
        r = curl("-p", "-o", "/dev/null", "-w", "%{http_connect}", "--max-time", "5", url,
                 proxy=self.daemon.proxy_url)
        self.assertEqual(r.stdout, "407")
        r = curl("-p", "-o", "/dev/null", "-w", "%{http_connect}", "--max-time", "5",
                 "--proxy-user", "alice:nope", url, proxy=self.daemon.proxy_url)
        self.assertEqual(r.stdout, "407")

    def test_each_keep_alive_request_brings_credentials(self):
        with socket.create_connection(("127.0.0.1", self.daemon.port), timeout=10) as s, \
                s.makefile("rb") as f:
            for i, (auth, status) in enumerate(((basic("alice", PASSWORD), 200),
                                                (basic("alice", PASSWORD), 200),
                                                (None, 407))):
                head = "GET %s HTTP/1.1\r\nHost: x\r\n" % self.origin.url("/ka%d" % i)
                if auth:
                    head += "Proxy-Authorization: %s\r\n" % auth
                s.sendall((head + "\r\n").encode())
                got, body = read_response(f)
                self.assertEqual(got, status, body)
                if status == 200:
                    self.assertEqual(body, b"hello /ka%d\n" % i)
        recs = self.daemon.wait_for_decision(lambda d: "/ka" in d.get("target", ""), count=3)
        self.assertEqual([(r["status"], r["user"]) for r in sorted(recs, key=lambda r: r["target"])],
                         [(200, "alice"), (200, "alice"), (407, "")])

    def test_malformed_credentials(self):
        for value in ("Basic !!!", "Bearer abc", basic("alice", PASSWORD) + "x", "Basic"):
            with self.subTest(value=value):
                reply = raw_exchange(self.daemon.port, (
                    "GET %s HTTP/1.1\r\nHost: x\r\nProxy-Authorization: %s\r\n\r\n"
                    % (self.origin.url("/bad"), value)).encode())
                self.assertTrue(reply.startswith(b"HTTP/1.1 407 "), reply)
        # Two fields, even both right, are refused.
        reply = raw_exchange(self.daemon.port, (
            "GET %s HTTP/1.1\r\nHost: x\r\nProxy-Authorization: %s\r\n"
            "Proxy-Authorization: %s\r\n\r\n"
            % (self.origin.url("/two"), basic("alice", PASSWORD), basic("alice", PASSWORD)))
            .encode())
        self.assertTrue(reply.startswith(b"HTTP/1.1 407 "), reply)

    def test_origin_form_uses_401_and_authorization(self):
        url = "http://127.0.0.1:%d/example.com/m/@v/list" % self.daemon.port
        r = curl("-i", url)
        self.assertRegex(r.stdout, r"^HTTP/1\.1 401 ")
        self.assertIn('WWW-Authenticate: Basic realm="switchyard"', r.stdout)
        self.assertNotIn("Proxy-Authenticate", r.stdout)
        # Proxy credentials do not count for the server door...
        r = curl("-i", "-H", "Proxy-Authorization: " + basic("alice", PASSWORD), url)
        self.assertRegex(r.stdout, r"^HTTP/1\.1 401 ")
        # ...Authorization (what the go command sends from .netrc) does.
        r = curl("-i", "-u", "alice:" + PASSWORD, url)
        self.assertNotRegex(r.stdout, r"^HTTP/1\.1 40[17] ")
        recs = self.daemon.wait_for_decision(
            lambda d: d.get("target") == "/example.com/m/@v/list", count=3)
        self.assertEqual(sorted(r["user"] for r in recs), ["", "", "alice"])
        self.assert_no_secrets_logged()

    def test_refusals_are_counted(self):
        r = curl("-o", "/dev/null", self.origin.url("/count"), proxy=self.daemon.proxy_url)
        self.assertEqual(r.returncode, 0)
        self.daemon.wait_for_decision(lambda d: d.get("target", "").endswith("/count"))
        m = self.daemon.wait_for_log(r"admin listening on (\S+):(\d+)")
        r = curl("http://%s:%s/metrics" % (m.group(1), m.group(2)))
        name = 'switchyard_requests_total{action="none",rule="access.users_file"} '
        line = [l for l in r.stdout.splitlines() if l.startswith(name)]
        self.assertEqual(len(line), 1, r.stdout)
        value = int(line[0][len(name):])
        # Every refusal the counter saw is a decision line, and no other.
        recs = self.daemon.wait_for_decision(lambda d: d.get("rule") == "access.users_file",
                                             count=value)
        self.assertEqual(len(recs), value)


class UsersFileLoadTest(unittest.TestCase):
    def test_reload_picks_up_changes_and_refuses_a_broken_file(self):
        with tempfile.TemporaryDirectory() as tmp, Origin() as origin:
            users = os.path.join(tmp, "users")
            passwd(users, "alice", PASSWORD)
            d = Daemon(config=proxy_config(access_extra='  users_file: "%s"\n' % users))
            try:
                def status(user):
                    r = curl("-o", "/dev/null", "-w", "%{http_code}", "--proxy-user", user,
                             origin.url("/r"), proxy=d.proxy_url)
                    return r.stdout
                self.assertEqual(status("alice:" + PASSWORD), "200")
                self.assertEqual(status("bob:bobpw"), "407")
                passwd(users, "bob", "bobpw")
                mark = d.log_index()
                d.send_signal(signal.SIGHUP)
                d.wait_for_log(r"config reloaded \(generation 2\)", start=mark)
                self.assertEqual(status("bob:bobpw"), "200")
                # A broken file keeps the previous config (and its users).
                with open(users, "a") as f:
                    f.write("carol:plaintext\n")
                mark = d.log_index()
                d.send_signal(signal.SIGHUP)
                m = d.wait_for_log(r"config reload failed: (.*)", start=mark)
                self.assertIn("access.users_file", m.group(1))
                self.assertIn(users, m.group(1))
                self.assertEqual(status("bob:bobpw"), "200")
            finally:
                self.assertEqual(d.stop(), 0)

    def test_removed_user_is_refused_on_an_open_keep_alive_connection(self):
        with tempfile.TemporaryDirectory() as tmp, Origin() as origin:
            users = os.path.join(tmp, "users")
            passwd(users, "alice", PASSWORD)
            passwd(users, "bob", "bobpw")
            d = Daemon(config=proxy_config(access_extra='  users_file: "%s"\n' % users))
            try:
                with socket.create_connection(("127.0.0.1", d.port), timeout=10) as s, \
                        s.makefile("rb") as f:
                    def ask(path):
                        s.sendall(("GET %s HTTP/1.1\r\nHost: x\r\nProxy-Authorization: %s\r\n\r\n"
                                   % (origin.url(path), basic("bob", "bobpw"))).encode())
                        return read_response(f)
                    self.assertEqual(ask("/before"), (200, b"hello /before\n"))
                    r = subprocess.run([BIN, "passwd", "--file", users, "--delete", "bob"],
                                       capture_output=True, text=True, timeout=60)
                    self.assertEqual(r.returncode, 0, r.stderr)
                    mark = d.log_index()
                    d.send_signal(signal.SIGHUP)
                    d.wait_for_log(r"config reloaded \(generation 2\)", start=mark)
                    self.assertEqual(ask("/after")[0], 407)
                self.assertEqual([q["path"] for q in origin.requests], ["/before"])
            finally:
                self.assertEqual(d.stop(), 0)

    def test_missing_users_file_refuses_to_start(self):
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "absent")
            config = os.path.join(tmp, "c.yaml")
            with open(config, "w") as f:
                f.write(proxy_config(access_extra='  users_file: "%s"\n' % path))
            r = subprocess.run([BIN, "--config", config, "--listen", "127.0.0.1:0"],
                               capture_output=True, text=True, timeout=30)
            self.assertEqual(r.returncode, 1)
            self.assertIn("access.users_file", r.stderr)
            self.assertIn(path, r.stderr)
            self.assertNotIn("listening on", r.stderr)


if __name__ == "__main__":
    unittest.main()
