"""Listeners and load shedding: IPv4 + IPv6 listeners from the config,
max_connections, and running out of file descriptors (EMFILE)."""
import os
import resource
import signal
import socket
import subprocess
import tempfile
import threading
import time
import unittest

from harness import (BIN, Daemon, Origin, curl, free_port, proxy_config, read_reply, recv_all,
                     recv_until)


class ListenerTest(unittest.TestCase):
    def test_ipv4_and_ipv6_listeners_from_config(self):
        with Origin() as origin:
            d = Daemon(config=proxy_config(listen=["127.0.0.1:0", "[::1]:0"]), listen=None)
            try:
                m = d.wait_for_log(r"listening on \[::1\]:(\d+)")
                v6_port = int(m.group(1))
                self.assertNotEqual(v6_port, 0)
                for proxy in (d.proxy_url, "http://[::1]:%d" % v6_port):
                    with self.subTest(proxy=proxy):
                        r = curl(origin.url("/v"), proxy=proxy)
                        self.assertEqual(r.returncode, 0, r.stderr)
                        self.assertEqual(r.stdout, "hello /v\n")
                recs = d.wait_for_decision(lambda r: r.get("target", "").endswith("/v"), count=2)
                self.assertEqual(sorted(r["client"].startswith("[::1]") for r in recs),
                                 [False, True])
            finally:
                self.assertEqual(d.stop(), 0)

    def test_listen_flag_overrides_config(self):
        d = Daemon(config=proxy_config(listen=["127.0.0.1:1"]), listen="127.0.0.1:0")
        try:
            self.assertNotEqual(d.port, 1)
        finally:
            self.assertEqual(d.stop(), 0)

    def test_unusable_listen_address_exits_1(self):
        d = None
        with self.assertRaises(AssertionError):
            d = Daemon(listen="192.0.2.1:0")  # not a local address: bind fails
        self.assertIsNone(d)


class ConnectionLimitTest(unittest.TestCase):
    def test_max_connections(self):
        with Origin() as origin:
            d = Daemon(config=proxy_config(limits={"max_connections": 2}))
            try:
                held = []
                for i in range(2):
                    s = socket.create_connection(("127.0.0.1", d.port), timeout=10)
                    s.sendall(("GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % origin.url("/h%d" % i))
                              .encode())
                    self.assertIn(b"hello /h%d" % i, recv_until(s, b"hello /h%d\n" % i))
                    held.append(s)
                with socket.create_connection(("127.0.0.1", d.port), timeout=10) as s:
                    reply = recv_all(s)
                self.assertTrue(reply.startswith(b"HTTP/1.1 503 "), reply)
                self.assertIn(b"error=connection_limit_reached", reply)
                d.wait_for_log(r"limits\.max_connections \(2\) reached")
                for s in held:
                    s.close()
                # Once they are gone, the next client is served.
                for _ in range(50):
                    r = curl(origin.url("/after"), proxy=d.proxy_url)
                    if r.returncode == 0 and r.stdout == "hello /after\n":
                        break
                else:
                    self.fail("never served again: " + r.stdout + r.stderr)
            finally:
                self.assertEqual(d.stop(), 0)


class StalledBodyTest(unittest.TestCase):
    def test_a_client_that_stops_sending_its_body_gets_408(self):
        # The origin waits for the body; the client sends 10 of 100 bytes and
        # stops. The client stalled, not the origin: 408, not 504.
        with Origin() as origin, Daemon(config=proxy_config(
                "rules:\n  - name: o\n    match: { hosts: \"127.0.0.1\" }\n"
                "    action: direct\n", limits={"idle_timeout": "1s"})) as d:
            with socket.create_connection(("127.0.0.1", d.port), timeout=30) as s:
                s.sendall(("POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n"
                           % origin.url("/echo")).encode() + b"0123456789")
                reply = read_reply(s, deadline=30)
            self.assertEqual(reply.status, 408, reply.raw[:300])
            self.assertIn("request body stalled", reply.body.decode())
            rec = d.wait_for_decision(lambda r: r.get("method") == "POST")[0]
            self.assertEqual(rec["status"], 408)


class EmfileTest(unittest.TestCase):
    def test_out_of_descriptors_does_not_spin_and_recovers(self):
        def low_nofile():
            resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))

        with Origin() as origin:
            d = Daemon(config=proxy_config(limits={"header_timeout": "30s"}),
                       preexec_fn=low_nofile)
            held = []
            try:
                for _ in range(100):
                    held.append(socket.create_connection(("127.0.0.1", d.port), timeout=10))
                d.wait_for_log(r"accept: out of file descriptors")
                for s in held:
                    s.close()
                held = []
                for _ in range(100):
                    r = curl(origin.url("/fd"), proxy=d.proxy_url, timeout=5)
                    if r.returncode == 0 and r.stdout == "hello /fd\n":
                        break
                else:
                    self.fail("never served again: " + r.stdout + r.stderr)
            finally:
                for s in held:
                    s.close()
                self.assertEqual(d.stop(), 0)


def cpu_ticks(pid):
    """utime + stime of a process, in clock ticks (/proc/PID/stat fields 14, 15)."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


class BusyPollTest(unittest.TestCase):
    """limits.busy_poll: serves as usual, spins while traffic flows, and
    sleeps again once it stops (an idle daemon must not burn a core)."""

    def test_serves_and_goes_back_to_sleep(self):
        # The shipped default (200us), a long window, and microseconds.
        for limits in ({}, {"busy_poll": "5ms"}, {"busy_poll": "1ms500us"}):
            with self.subTest(limits=limits):
                self.serve_then_idle(limits)

    def serve_then_idle(self, limits):
        tick = os.sysconf("SC_CLK_TCK")
        with Origin() as origin:
            d = Daemon(config=proxy_config(limits=limits))
            try:
                for i in range(20):
                    r = curl(origin.url("/b%d" % i), proxy=d.proxy_url)
                    self.assertEqual(r.returncode, 0, r.stderr)
                    self.assertEqual(r.stdout, "hello /b%d\n" % i)
                d.wait_for_decision(lambda r: r.get("target", "").endswith("/b19"))
                # Measured over a second of silence: a loop that kept spinning
                # would use about `tick` ticks; a sleeping one close to none.
                before = cpu_ticks(d.pid)
                time.sleep(1.0)  # the measurement window, not a wait for an event
                used = cpu_ticks(d.pid) - before
                self.assertLess(used, tick * 0.25, "the daemon kept spinning while idle")
                # A reload to 0 turns it off; the daemon keeps serving.
                with open(d.config_path, "w") as f:
                    f.write(proxy_config(limits={"busy_poll": "0"}))
                mark = d.log_index()
                d.send_signal(signal.SIGHUP)
                d.wait_for_log(r"config reloaded", start=mark)
                r = curl(origin.url("/after"), proxy=d.proxy_url)
                self.assertEqual(r.stdout, "hello /after\n")
            finally:
                self.assertEqual(d.stop(), 0)


class SocketActivationTest(unittest.TestCase):
    def test_adopts_the_socket_systemd_passes(self):
        with Origin() as origin, tempfile.TemporaryDirectory(prefix="sy-sa-") as tmp:
            config = os.path.join(tmp, "switchyard.yaml")
            with open(config, "w") as f:
                f.write(proxy_config(listen=["127.0.0.1:1"]))  # not used: systemd's socket is
            port = free_port()
            env = {k: v for k, v in os.environ.items()
                   if k.lower() not in ("http_proxy", "https_proxy", "no_proxy", "all_proxy")}
            # systemd-socket-activate binds the port and starts the daemon on
            # the first connection, handing the socket over as fd 3.
            proc = subprocess.Popen(["systemd-socket-activate", "-l", "127.0.0.1:%d" % port,
                                     BIN, "run", "--config", config],
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                    env=env)
            lines = []
            reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)
            reader.start()
            try:
                r = None
                for _ in range(100):
                    r = curl(origin.url("/activated"), proxy="http://127.0.0.1:%d" % port,
                             timeout=10)
                    if r.returncode != 7:  # 7: not listening yet
                        break
                self.assertEqual(r.returncode, 0, r.stderr)
                self.assertEqual(r.stdout, "hello /activated\n")
            finally:
                proc.send_signal(signal.SIGTERM)
                rc = proc.wait(20)
                reader.join(20)
                proc.stdout.close()
            text = "".join(lines)
            self.assertEqual(rc, 0, text)
            self.assertIn("socket activation: 1 listening socket(s) from systemd", text)
            self.assertIn("listening on 127.0.0.1:%d" % port, text)


if __name__ == "__main__":
    unittest.main()
