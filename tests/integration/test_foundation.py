"""Foundation: the binary starts, reports its port, answers, and stops cleanly."""
import signal
import socket
import unittest

from harness import Daemon, raw_exchange


class FoundationTest(unittest.TestCase):
    def test_logs_real_port_and_answers_over_tcp(self):
        with Daemon() as d:
            self.assertNotEqual(d.port, 0)
            reply = raw_exchange(d.port, b"GET /nothing-here HTTP/1.1\r\nHost: x\r\n\r\n")
            self.assertRegex(reply.split(b"\r\n", 1)[0], rb"^HTTP/1\.1 \d{3} ")
            self.assertEqual(d.stop(signal.SIGTERM), 0)

    def test_exit_zero_on_sigint_and_sigterm(self):
        for signum in (signal.SIGINT, signal.SIGTERM):
            with self.subTest(signal=signum):
                d = Daemon()
                self.assertEqual(d.stop(signum), 0)
                # The listener is closed: the port no longer accepts.
                with self.assertRaises(OSError):
                    socket.create_connection(("127.0.0.1", d.port), timeout=2).close()


if __name__ == "__main__":
    unittest.main()
