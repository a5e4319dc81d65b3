"""Signals: SIGHUP reload (good and bad), SIGTERM drain, SIGUSR1 log reopen."""
import json
import os
import signal
import socket
import subprocess
import tempfile
import threading
import time
import unittest

from harness import (Daemon, Origin, TcpServer, curl, proxy_config, raw_exchange, recv_all,
                     recv_until)


def echo(conn):
    while True:
        b = conn.recv(65536)
        if not b:
            return
        conn.sendall(b)


def file_has(path, text):
    if not os.path.exists(path):
        return False
    with open(path) as f:
        return text in f.read()


def wait_until(pred, deadline=20.0, what="condition"):
    """Polls `pred` (a cheap check of state another thread changes) until true."""
    end = time.monotonic() + deadline
    while not pred():
        if time.monotonic() > end:
            raise AssertionError("timed out waiting for " + what)
        time.sleep(0.02)


class ReloadTest(unittest.TestCase):
    def setUp(self):
        self.echo = TcpServer(echo)
        self.other = TcpServer(echo)

    def tearDown(self):
        self.echo.close()
        self.other.close()

    def connect(self, d, port):
        s = socket.create_connection(("127.0.0.1", d.port), timeout=10)
        s.sendall(("CONNECT 127.0.0.1:%d HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" % port).encode())
        return s

    def test_good_reload_swaps_snapshot_and_keeps_open_tunnels(self):
        d = Daemon(config=proxy_config(connect_ports=(self.echo.port,)))
        try:
            tunnel = self.connect(d, self.echo.port)
            self.assertTrue(recv_until(tunnel, b"\r\n\r\n").startswith(b"HTTP/1.1 200 "))
            with open(d.config_path, "w") as f:
                f.write(proxy_config(connect_ports=(self.other.port,)))
            mark = d.log_index()
            d.send_signal(signal.SIGHUP)
            d.wait_for_log(r"config reloaded \(generation 2\)", start=mark)
            # New connections use generation 2...
            with self.connect(d, self.echo.port) as s:
                self.assertTrue(recv_all(s).startswith(b"HTTP/1.1 403 "))
            with self.connect(d, self.other.port) as s:
                self.assertTrue(recv_until(s, b"\r\n\r\n").startswith(b"HTTP/1.1 200 "))
            # ...while the tunnel opened under generation 1 keeps working.
            tunnel.sendall(b"still here")
            self.assertEqual(recv_until(tunnel, b"still here"), b"still here")
            tunnel.close()
            recs = d.wait_for_decision(lambda r: r.get("status") == 200, count=2)
            self.assertEqual(sorted(r["config_gen"] for r in recs), [1, 2])
        finally:
            self.assertEqual(d.stop(), 0)

    def test_bad_reload_keeps_old_config(self):
        d = Daemon(config=proxy_config(connect_ports=(self.echo.port,)))
        try:
            with open(d.config_path, "w") as f:
                f.write("access:\n  connect_ports: [not-a-port]\nno_such_key: 1\n")
            mark = d.log_index()
            d.send_signal(signal.SIGHUP)
            m = d.wait_for_log(r"config reload failed: (.*)", start=mark)
            self.assertIn("switchyard.yaml", m.group(1))
            with self.connect(d, self.echo.port) as s:
                self.assertTrue(recv_until(s, b"\r\n\r\n").startswith(b"HTTP/1.1 200 "))
            # The next good file is generation 2: a refused one uses no number.
            with open(d.config_path, "w") as f:
                f.write(proxy_config(connect_ports=(self.echo.port,)))
            mark = d.log_index()
            d.send_signal(signal.SIGHUP)
            d.wait_for_log(r"config reloaded \(generation 2\)", start=mark)
        finally:
            self.assertEqual(d.stop(), 0)

    def test_reload_names_settings_that_need_a_restart(self):
        d = Daemon(config=proxy_config(connect_ports=(443,)))
        try:
            with open(d.config_path, "w") as f:
                f.write(proxy_config(connect_ports=(443,)) + 'cache: { dir: "/tmp/elsewhere" }\n')
            mark = d.log_index()
            d.send_signal(signal.SIGHUP)
            d.wait_for_log(r"config reload: cache\.dir changed; restart", start=mark)
            d.wait_for_log(r"config reloaded \(generation 2\)", start=mark)
        finally:
            self.assertEqual(d.stop(), 0)


class DrainTest(unittest.TestCase):
    def test_sigterm_lets_requests_finish(self):
        with Origin() as origin:
            d = Daemon(config=proxy_config())
            proc = subprocess.Popen(["curl", "-sS", "--max-time", "20", "--proxy", d.proxy_url,
                                     origin.url("/slow?ms=1500")],
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            wait_until(lambda: any(r["path"].startswith("/slow") for r in list(origin.requests)),
                       what="the origin to see the request")
            mark = d.log_index()
            d.send_signal(signal.SIGTERM)
            d.wait_for_log(r"draining 1 open connection", start=mark)
            # Listeners are closed at once.
            with self.assertRaises(OSError):
                socket.create_connection(("127.0.0.1", d.port), timeout=2).close()
            out, err = proc.communicate(timeout=30)
            proc.wait()
            self.assertEqual(proc.returncode, 0, err)
            self.assertEqual(out, "slow done\n")
            self.assertEqual(d.stop(deadline=20), 0)

    def test_drain_timeout_closes_tunnels(self):
        with TcpServer(echo) as server:
            d = Daemon(config=proxy_config(connect_ports=(server.port,),
                                           limits={"drain_timeout": "1s"}))
            s = socket.create_connection(("127.0.0.1", d.port), timeout=10)
            s.sendall(("CONNECT 127.0.0.1:%d HTTP/1.1\r\n"
                       "Host: 127.0.0.1\r\n\r\n" % server.port).encode())
            self.assertTrue(recv_until(s, b"\r\n\r\n").startswith(b"HTTP/1.1 200 "))
            start = time.monotonic()
            d.send_signal(signal.SIGTERM)
            d.wait_for_log(r"drain timeout: closing 1 open connection")
            self.assertEqual(recv_all(s), b"")
            s.close()
            self.assertEqual(d.stop(deadline=20), 0)
            self.assertGreaterEqual(time.monotonic() - start, 0.9)
            rec = [r for r in d.decisions() if r.get("method") == "CONNECT"]
            self.assertEqual(len(rec), 1)
            self.assertEqual(rec[0]["closed_by"], "proxy")

    def test_idle_keep_alive_connections_close_at_once(self):
        with Origin() as origin:
            d = Daemon(config=proxy_config(limits={"drain_timeout": "30s"}))
            s = socket.create_connection(("127.0.0.1", d.port), timeout=10)
            s.sendall(("GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % origin.url("/ka")).encode())
            self.assertIn(b"hello /ka", recv_until(s, b"hello /ka\n"))
            start = time.monotonic()
            self.assertEqual(d.stop(signal.SIGTERM), 0)
            self.assertLess(time.monotonic() - start, 10)
            self.assertEqual(recv_all(s), b"")
            s.close()


class DecisionLogFileTest(unittest.TestCase):
    def test_sigusr1_reopens_decision_log(self):
        with Origin() as origin, tempfile.TemporaryDirectory(prefix="sy-log-") as tmp:
            path = os.path.join(tmp, "decisions.log")
            d = Daemon(config="log: { format: json, decisions: %s }\n" % json.dumps(path))
            try:
                r = curl(origin.url("/first"), proxy=d.proxy_url)
                self.assertEqual(r.returncode, 0, r.stderr)
                wait_until(lambda: file_has(path, "/first"),
                           what="the first line")
                os.rename(path, path + ".1")
                mark = d.log_index()
                d.send_signal(signal.SIGUSR1)
                d.wait_for_log(r"decision log reopened", start=mark)
                r = curl(origin.url("/second"), proxy=d.proxy_url)
                self.assertEqual(r.returncode, 0, r.stderr)
                wait_until(lambda: file_has(path, "/second"),
                           what="the second line in the new file")
                self.assertFalse(file_has(path + ".1", "/second"))
            finally:
                self.assertEqual(d.stop(), 0)


if __name__ == "__main__":
    unittest.main()
