"""The daemon speaks sd_notify to the NOTIFY_SOCKET systemd would give it.

READY=1 must come only once the proxy port accepts; a SIGHUP reload is
wrapped in RELOADING=1 ... READY=1; SIGTERM announces STOPPING=1.
"""
import os
import signal
import socket
import tempfile
import threading
import unittest

from harness import Daemon


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class NotifyTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.path = os.path.join(self.tmp.name, "notify.sock")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.settimeout(20)
        self.port = free_port()
        self.messages = []          # (message, port accepted when it arrived)
        self.arrived = threading.Condition()
        self.stop_reader = False
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def tearDown(self):
        self.stop_reader = True
        self.sock.close()
        self.reader.join(5)
        self.tmp.cleanup()

    def _port_accepts(self):
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=10).close()
            return True
        except OSError:
            return False

    def _read(self):
        while not self.stop_reader:
            try:
                data = self.sock.recv(4096)
            except (socket.timeout, OSError):
                return
            msg = data.decode()
            # Checked the moment READY arrives, before anything else runs.
            accepts = self._port_accepts() if "READY=1" in msg else None
            with self.arrived:
                self.messages.append((msg, accepts))
                self.arrived.notify_all()

    def wait_for(self, predicate, what, start=0, deadline=20.0):
        """Waits until a message from index `start` on satisfies `predicate`."""
        with self.arrived:
            ok = self.arrived.wait_for(
                lambda: any(predicate(m) for m, _ in self.messages[start:]), timeout=deadline)
        if not ok:
            self.fail("no %s in %r" % (what, self.messages))

    def test_ready_reload_stopping(self):
        config = 'listen: ["127.0.0.1:%d"]\n' % self.port
        d = Daemon(config=config, listen=None, env={"NOTIFY_SOCKET": self.path})
        try:
            self.wait_for(lambda m: "READY=1" in m, "READY=1")
            first_ready = [(m, a) for m, a in self.messages if "READY=1" in m][0]
            self.assertTrue(first_ready[1], "READY=1 arrived before the port accepted")
            before = len(self.messages)
            d.send_signal(signal.SIGHUP)
            d.wait_for_log(r"config reload")
            self.wait_for(lambda m: "RELOADING=1" in m, "RELOADING=1", before)
            after = [m for m, _ in self.messages[before:]]
            reloading = before + next(i for i, m in enumerate(after) if "RELOADING=1" in m)
            self.assertIn("MONOTONIC_USEC=", self.messages[reloading][0])
            # The reload ends with READY=1 again, after RELOADING=1.
            self.wait_for(lambda m: "READY=1" in m, "READY=1 after RELOADING=1", reloading + 1)
        finally:
            self.assertEqual(d.stop(signal.SIGTERM), 0)
        self.wait_for(lambda m: "STOPPING=1" in m, "STOPPING=1", before)


if __name__ == "__main__":
    unittest.main()
