"""CONNECT tunnels, action direct: TLS through the tunnel, refusals, relay details."""
import hashlib
import os
import socket
import struct
import tempfile
import threading
import unittest

from harness import (Daemon, Origin, TcpServer, admin_port, curl, make_cert, pattern_sha256,
                     proxy_config, raw_exchange, recv_all, recv_until, scrape_metrics, wait_until)


def echo_until_eof(conn):
    """Reads everything until the client's FIN, then answers and closes."""
    data = b""
    while True:
        b = conn.recv(65536)
        if not b:
            break
        data += b
    conn.sendall(b"got %d bytes, sha256 %s" % (len(data), hashlib.sha256(data).hexdigest().encode()))


def echo(conn):
    while True:
        b = conn.recv(65536)
        if not b:
            return
        conn.sendall(b)


class ConnectTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="sy-connect-")
        cls.cert = make_cert(cls.tmp.name)
        cls.tls_origin = Origin(tls_cert=cls.cert)
        cls.echo = TcpServer(echo)
        cls.eof_echo = TcpServer(echo_until_eof)
        ports = (443, cls.tls_origin.port, cls.echo.port, cls.eof_echo.port)
        cls.daemon = Daemon(config=proxy_config(
            connect_ports=ports, limits={"connect_timeout": "1s"},
            extra='resolve: { "origin.test": "127.0.0.1" }\n'))

    @classmethod
    def tearDownClass(cls):
        rc = cls.daemon.stop()
        cls.tls_origin.close()
        cls.echo.close()
        cls.eof_echo.close()
        cls.tmp.cleanup()
        if rc != 0:
            raise AssertionError("daemon exit code %d" % rc)

    def curl(self, *args, **kw):
        return curl("--cacert", self.cert[0], *args, proxy=self.daemon.proxy_url, **kw)

    def connect(self, target):
        s = socket.create_connection(("127.0.0.1", self.daemon.port), timeout=10)
        s.sendall(("CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (target, target)).encode())
        return s

    def test_https_through_tunnel(self):
        r = self.curl(self.tls_origin.url("/tls", scheme="https"))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, "hello /tls\n")
        rec = self.daemon.wait_for_decision(
            lambda d: d.get("target") == "127.0.0.1:%d" % self.tls_origin.port)[0]
        self.assertEqual(rec["status"], 200)
        self.assertEqual(rec["target"], "127.0.0.1:%d" % self.tls_origin.port)
        self.assertEqual(rec["action"], "direct")
        self.assertEqual(rec["resolved"], "127.0.0.1:%d" % self.tls_origin.port)
        self.assertGreater(rec["bytes_in"], 0)
        self.assertGreater(rec["bytes_out"], 0)
        self.assertIn(rec["closed_by"], ("client", "upstream"))

    def test_https_by_name_from_resolve_overrides(self):
        size = 20 * 1024 * 1024
        out = os.path.join(self.tmp.name, "tls-big.out")
        r = self.curl("-o", out, "https://origin.test:%d/big?size=%d" % (self.tls_origin.port, size),
                      timeout=120)
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(out, "rb") as f:
            self.assertEqual(hashlib.sha256(f.read()).hexdigest(), pattern_sha256(size))

    def test_pipelined_bytes_after_connect_head_go_into_the_tunnel(self):
        s = socket.create_connection(("127.0.0.1", self.daemon.port), timeout=10)
        target = "127.0.0.1:%d" % self.echo.port
        s.sendall(("CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\nPING-1" % (target, target)).encode())
        data = recv_until(s, b"PING-1")
        self.assertTrue(data.startswith(b"HTTP/1.1 200 Connection established\r\n\r\n"), data)
        self.assertTrue(data.endswith(b"PING-1"), data)
        s.sendall(b"PING-2")
        self.assertEqual(recv_until(s, b"PING-2"), b"PING-2")
        s.close()

    def test_half_close_is_propagated(self):
        s = self.connect("127.0.0.1:%d" % self.eof_echo.port)
        head = recv_until(s, b"\r\n\r\n")
        self.assertTrue(head.startswith(b"HTTP/1.1 200 "), head)
        payload = os.urandom(1 << 20)
        s.sendall(payload)
        s.shutdown(socket.SHUT_WR)
        reply = recv_all(s)
        self.assertEqual(reply, b"got %d bytes, sha256 %s"
                         % (len(payload), hashlib.sha256(payload).hexdigest().encode()))
        s.close()
        rec = self.daemon.wait_for_decision(lambda d: d.get("port") == self.eof_echo.port)[0]
        self.assertEqual(rec["closed_by"], "client")
        self.assertEqual(rec["bytes_in"], len(payload))

    def test_port_not_in_connect_ports_is_403(self):
        with self.connect("127.0.0.1:25") as s:
            reply = recv_all(s)
        self.assertTrue(reply.startswith(b"HTTP/1.1 403 Port 25 not allowed\r\n"), reply)
        self.assertIn(b"Proxy-Status: switchyard; error=http_request_denied", reply)
        self.assertIn(b"access.connect_ports", reply)
        rec = self.daemon.wait_for_decision(lambda d: d.get("port") == 25)[0]
        self.assertEqual(rec["status"], 403)
        self.assertEqual(rec["rule"], "access.connect_ports")

    def test_malformed_authority_is_400(self):
        for target in ("example.com", "example.com:", "example.com:0", "example.com:99999",
                       "::1:443", "[::1:443", "http://example.com:443", "a b:443",
                       "user@example.com:443", "example.com:443/path"):
            with self.subTest(target=target):
                with self.connect(target) as s:
                    reply = recv_all(s)
                self.assertTrue(reply.startswith(b"HTTP/1.1 400 "), reply)
                self.assertIn(b"error=http_request_error", reply)

    def test_ipv6_literal_in_brackets(self):
        with Origin(tls_cert=self.cert, host="::1") as o6:
            d = Daemon(config=proxy_config(connect_ports=(o6.port,)))
            try:
                s = socket.create_connection(("127.0.0.1", d.port), timeout=10)
                t = "[::1]:%d" % o6.port
                s.sendall(("CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (t, t)).encode())
                head = recv_until(s, b"\r\n\r\n")
                self.assertTrue(head.startswith(b"HTTP/1.1 200 "), head)
                s.close()
                rec = d.wait_for_decision(lambda r: r.get("method") == "CONNECT")[0]
                self.assertEqual(rec["resolved"], "[::1]:%d" % o6.port)
            finally:
                self.assertEqual(d.stop(), 0)

    def test_refused_is_502(self):
        with socket.socket() as tmp:
            tmp.bind(("127.0.0.1", 0))
            port = tmp.getsockname()[1]
        d = Daemon(config=proxy_config(connect_ports=(port,)))
        try:
            reply = raw_exchange(d.port, ("CONNECT 127.0.0.1:%d HTTP/1.1\r\n"
                                          "Host: 127.0.0.1\r\n\r\n" % port).encode())
            self.assertTrue(reply.startswith(b"HTTP/1.1 502 "), reply)
            self.assertIn(b"error=connection_refused", reply)
        finally:
            self.assertEqual(d.stop(), 0)

    def test_unresolvable_is_502(self):
        reply = raw_exchange(self.daemon.port,
                             b"CONNECT no-such-host.invalid:443 HTTP/1.1\r\n"
                             b"Host: no-such-host.invalid\r\n\r\n", deadline=30)
        self.assertTrue(reply.startswith(b"HTTP/1.1 502 "), reply)
        self.assertIn(b"error=dns_error", reply)

    def test_connect_timeout_is_504(self):
        # A listener whose accept queue is full drops further SYNs, so the
        # connect neither succeeds nor fails until our 1 s deadline.
        lst = socket.socket()
        lst.bind(("127.0.0.1", 0))
        lst.listen(0)
        port = lst.getsockname()[1]
        fillers = []
        try:
            for _ in range(3):
                c = socket.socket()
                c.setblocking(False)
                c.connect_ex(("127.0.0.1", port))
                fillers.append(c)
            d = Daemon(config=proxy_config(connect_ports=(port,),
                                           limits={"connect_timeout": "1s"}))
            try:
                reply = raw_exchange(d.port,
                                     ("CONNECT 127.0.0.1:%d HTTP/1.1\r\n"
                                      "Host: 127.0.0.1\r\n\r\n" % port).encode())
                self.assertTrue(reply.startswith(b"HTTP/1.1 504 "), reply)
                self.assertIn(b"error=connection_timeout", reply)
            finally:
                self.assertEqual(d.stop(), 0)
        finally:
            for c in fillers:
                c.close()
            lst.close()

    def test_client_outside_allow_clients_gets_403(self):
        d = Daemon(config=proxy_config(connect_ports=(self.echo.port,),
                                       access_extra='  allow_clients: ["10.0.0.0/8"]\n'))
        try:
            reply = raw_exchange(d.port, ("CONNECT 127.0.0.1:%d HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
                                          % self.echo.port).encode())
            self.assertTrue(reply.startswith(b"HTTP/1.1 403 Client not allowed"), reply)
            d.wait_for_log(r"client 127\.0\.0\.1:\d+ is not in access\.allow_clients")
            rec = d.wait_for_decision(lambda r: r.get("method") == "CONNECT")[0]
            self.assertEqual(rec["status"], 403)
            self.assertEqual(rec["rule"], "access.allow_clients")
        finally:
            self.assertEqual(d.stop(), 0)


if __name__ == "__main__":
    unittest.main()


# Random, so that bytes relayed out of order cannot cancel out (a repeating
# pattern would hide a swapped pair of aligned blocks).
BULK = os.urandom(24 << 20)
BULK_SHA = hashlib.sha256(BULK).hexdigest()


def send_bulk(conn):
    conn.sendall(BULK)


class SpliceTest(unittest.TestCase):
    """Bulk tunnels with limits.splice on (the default) and off: every byte
    arrives in order whichever side is slower, both ways, and a reset in the
    middle of one tunnel leaves nothing behind for the next."""

    @classmethod
    def setUpClass(cls):
        cls.source = TcpServer(send_bulk)
        cls.echo = TcpServer(echo)
        ports = (cls.source.port, cls.echo.port)
        cls.daemons = {
            splice: Daemon(config=proxy_config(connect_ports=ports, limits={"splice": splice},
                                               extra='admin: "127.0.0.1:0"\n'))
            for splice in ("true", "false")}

    @classmethod
    def tearDownClass(cls):
        rcs = [d.stop() for d in cls.daemons.values()]
        cls.source.close()
        cls.echo.close()
        if any(rcs):
            raise AssertionError("daemon exit codes %r" % rcs)

    def tunnel(self, daemon, port, rcvbuf=None):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        s.settimeout(30)
        s.connect(("127.0.0.1", daemon.port))
        target = "127.0.0.1:%d" % port
        s.sendall(("CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (target, target)).encode())
        head = recv_until(s, b"\r\n\r\n")
        self.assertTrue(head.startswith(b"HTTP/1.1 200 "), head)
        return s, head.split(b"\r\n\r\n", 1)[1]

    def test_fast_and_slow_readers_get_every_byte_in_order(self):
        # A reader with a small window in small reads keeps the proxy's
        # writes to it short (the pipe's rest goes through memory); a fast
        # one takes whole pipes.
        for splice, d in self.daemons.items():
            for rcvbuf, chunk in ((None, 1 << 20), (8192, 4096)):
                with self.subTest(splice=splice, rcvbuf=rcvbuf):
                    from_source = lambda r: r.get("port") == self.source.port
                    logged = len(d.wait_for_decision(from_source, count=0))
                    s, first = self.tunnel(d, self.source.port, rcvbuf)
                    h = hashlib.sha256(first)
                    n = len(first)
                    while True:
                        b = s.recv(chunk)
                        if not b:
                            break
                        h.update(b)
                        n += len(b)
                    s.close()
                    self.assertEqual(n, len(BULK))
                    self.assertEqual(h.hexdigest(), BULK_SHA)
                    rec = d.wait_for_decision(from_source, count=logged + 1)[-1]
                    self.assertEqual(rec["bytes_out"], len(BULK))
                    self.assertEqual(rec["closed_by"], "upstream")

    def test_both_ways_at_once(self):
        for splice, d in self.daemons.items():
            with self.subTest(splice=splice):
                s, first = self.tunnel(d, self.echo.port)
                received = [first]

                def reader():
                    n = len(first)
                    while n < len(BULK):
                        b = s.recv(1 << 16)
                        if not b:
                            break
                        received.append(b)
                        n += len(b)

                t = threading.Thread(target=reader)
                t.start()
                s.sendall(BULK)
                t.join(60)
                s.close()
                self.assertEqual(hashlib.sha256(b"".join(received)).hexdigest(), BULK_SHA)

    def test_a_reset_mid_transfer_leaves_the_next_tunnel_clean(self):
        for splice, d in self.daemons.items():
            with self.subTest(splice=splice):
                s, first = self.tunnel(d, self.source.port, rcvbuf=65536)
                got = len(first)
                while got < (1 << 20):
                    got += len(s.recv(65536))
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                s.close()  # RST, with the proxy in the middle of moving bytes
                s, first = self.tunnel(d, self.source.port)
                self.assertEqual(hashlib.sha256(first + recv_all(s, 30)).hexdigest(), BULK_SHA)
                s.close()

    def spliced_bytes(self, d):
        return scrape_metrics(admin_port(d))["switchyard_tunnel_spliced_bytes_total"]

    def download(self, socks, chunk=1 << 20):
        """Reads each (socket, first bytes) to EOF, all at once; checks them."""
        digests = [None] * len(socks)

        def read(i, s, first):
            h = hashlib.sha256(first)
            while True:
                b = s.recv(chunk)
                if not b:
                    break
                h.update(b)
            s.close()
            digests[i] = h.hexdigest()

        threads = [threading.Thread(target=read, args=(i, s, first))
                   for i, (s, first) in enumerate(socks)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        self.assertEqual(digests, [BULK_SHA] * len(socks))

    def test_splice_only_while_two_bulk_tunnels_share_the_loop(self):
        # (downloads at once, limits.splice, slow readers) -> whether bytes
        # were spliced. Slow readers (a small window, small reads) make the
        # proxy's writes to them short: the pipe's rest goes through memory.
        cases = ((1, "true", False, False), (2, "true", True, False), (3, "true", True, False),
                 (2, "true", True, True), (2, "false", False, False))
        for at_once, splice, spliced, slow in cases:
            with self.subTest(at_once=at_once, splice=splice, slow=slow):
                d = self.daemons[splice]
                port = admin_port(d)
                wait_until(lambda: scrape_metrics(port)["switchyard_tunnels_active"] == 0,
                           what="earlier tunnels closed")
                before = self.spliced_bytes(d)
                # All tunnels open before any is read: their bytes pile up
                # and every download direction is bulk at the same time.
                rcvbuf, chunk = (8192, 4096) if slow else (None, 1 << 20)
                self.download([self.tunnel(d, self.source.port, rcvbuf) for _ in range(at_once)],
                              chunk)
                moved = self.spliced_bytes(d) - before
                if spliced:
                    self.assertGreater(moved, 0)
                    self.assertLessEqual(moved, at_once * len(BULK))
                else:
                    self.assertEqual(moved, 0)
