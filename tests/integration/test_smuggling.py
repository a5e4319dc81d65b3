"""Request smuggling regressions: every case in tests/smuggling/ (format in its
README) is sent raw to a real daemon in front of a recording origin. The client
must get exactly the expected statuses, the connection must close (or stay in
sync: a probe on it gets its own answer), and nothing beyond the legitimate
request(s) may ever reach the origin."""
import os
import re
import socket
import threading
import time
import unittest

from harness import Daemon, TcpServer, curl, proxy_config

SMUGGLING_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "smuggling")
DEADLINE = 10.0
TOKEN = re.compile(rb"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


def load_cases():
    """[(name, raw bytes, expectations)] for every NAME.http with its NAME.expect."""
    cases = []
    for fname in sorted(os.listdir(SMUGGLING_DIR)):
        if not fname.endswith(".http"):
            continue
        name = fname[:-len(".http")]
        with open(os.path.join(SMUGGLING_DIR, fname), "rb") as f:
            raw = f.read()
        expect = {}
        with open(os.path.join(SMUGGLING_DIR, name + ".expect")) as f:
            for line in f:
                line = line.strip()
                if line and not line.startswith("#"):
                    key, _, value = line.partition(":")
                    expect[key.strip()] = value.strip()
        cases.append((name, raw, expect))
    return cases


class Malformed(Exception):
    pass


def parse_request(buf):
    """Reads one request from the front of `buf` as a strict origin would.

    Returns (record, consumed), or (None, 0) when more bytes are needed.
    Raises Malformed when the bytes are not well-formed HTTP/1.1 as the proxy
    should send it (one space-separated request line, token names, no
    control bytes, unambiguous framing)."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        if len(buf) > 1 << 20:
            raise Malformed("head larger than 1 MiB")
        return None, 0
    lines = buf[:end].split(b"\r\n")
    parts = lines[0].split(b" ")
    if len(parts) != 3 or not TOKEN.match(parts[0]) or parts[2] != b"HTTP/1.1":
        raise Malformed("request line %r" % lines[0])
    target = parts[1]
    if not target.startswith(b"/") or any(c <= 0x20 or c >= 0x7f for c in target):
        raise Malformed("request-target %r" % target)
    fields = []
    for line in lines[1:]:
        name, sep, value = line.partition(b":")
        if not sep or not TOKEN.match(name):
            raise Malformed("field line %r" % line)
        if any((c < 0x20 and c != 0x09) or c == 0x7f for c in value):
            raise Malformed("control byte in %r" % line)
        fields.append((name.lower(), value.strip(b" \t")))
    te = [v for n, v in fields if n == b"transfer-encoding"]
    cl = [v for n, v in fields if n == b"content-length"]
    if (te and cl) or len(cl) > 1 or len(te) > 1:
        raise Malformed("ambiguous framing %r" % fields)
    pos = end + 4
    body = b""
    if te:
        if te[0] != b"chunked":
            raise Malformed("transfer coding %r" % te[0])
        while True:
            eol = buf.find(b"\r\n", pos)
            if eol < 0:
                return None, 0
            size_text = buf[pos:eol]
            if not re.match(rb"^[0-9a-fA-F]{1,16}$", size_text):
                raise Malformed("chunk size %r" % size_text)
            size = int(size_text, 16)
            if size == 0:
                if buf[eol + 2:eol + 4] == b"":
                    return None, 0
                if buf[eol + 2:eol + 4] != b"\r\n":
                    raise Malformed("trailer section")
                pos = eol + 4
                break
            if len(buf) < eol + 2 + size + 2:
                return None, 0
            body += buf[eol + 2:eol + 2 + size]
            if buf[eol + 2 + size:eol + 4 + size] != b"\r\n":
                raise Malformed("chunk data overruns its size")
            pos = eol + 4 + size
    elif cl:
        if not cl[0].isdigit():
            raise Malformed("content-length %r" % cl[0])
        size = int(cl[0])
        if len(buf) < pos + size:
            return None, 0
        body = buf[pos:pos + size]
        pos += size
    record = {"method": parts[0].decode(), "target": target.decode(), "fields": fields,
              "body": body}
    return record, pos


class RecordingOrigin:
    """A loopback origin that records every request head it receives (as soon
    as the head is complete), answers each complete request with 200, and
    notes anything it cannot read."""

    def __init__(self):
        self.lock = threading.Condition()
        self.heads = []       # target of every head, in order of arrival
        self.complete = []    # records of complete requests
        self.problems = []    # malformed input
        self.open = 0         # connections from the proxy still open
        self.server = TcpServer(self._serve)
        self.port = self.server.port
        self.authority = "127.0.0.1:%d" % self.port

    def _serve(self, conn):
        with self.lock:
            self.open += 1
        buf = b""
        counted = 0  # length of the head already counted in `heads`
        try:
            while True:
                try:
                    data = conn.recv(65536)
                except OSError:
                    data = b""
                with self.lock:
                    if not data:
                        break
                    buf += data
                    while True:
                        end = buf.find(b"\r\n\r\n")
                        if end >= 0 and counted == 0:
                            line = buf[:buf.find(b"\r\n")].split(b" ")
                            self.heads.append(line[1].decode("latin-1") if len(line) > 1 else "?")
                            counted = end + 4
                        try:
                            record, used = parse_request(buf)
                        except Malformed as e:
                            self.problems.append(str(e))
                            return
                        if record is None:
                            break
                        self.complete.append(record)
                        buf = buf[used:]
                        counted = 0
                        conn.sendall(OK)
                    self.lock.notify_all()
        finally:
            with self.lock:
                self.open -= 1
                self.lock.notify_all()

    def wait_settled(self, heads, deadline=DEADLINE):
        """Waits until at least `heads` request heads arrived (or the deadline
        passed): the proxy may still be writing when the client is done."""
        end = time.monotonic() + deadline
        with self.lock:
            while len(self.heads) < heads:
                left = end - time.monotonic()
                if left <= 0:
                    return
                self.lock.wait(left)

    def close(self):
        self.server.close()


def read_response(sock):
    """One response from `sock` (a file object): its status, or None at EOF."""
    line = sock.readline()
    if not line:
        return None
    m = re.match(rb"^HTTP/1\.1 (\d{3}) ", line)
    if not m:
        raise AssertionError("not a status line: %r" % line)
    length = None
    chunked = False
    while True:
        h = sock.readline()
        if h in (b"\r\n", b""):
            break
        name, _, value = h.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
        elif name.strip().lower() == b"transfer-encoding":
            chunked = True
    if chunked:
        while True:
            size = int(sock.readline().split(b";")[0], 16)
            sock.read(size + 2)
            if size == 0:
                break
    elif length:
        sock.read(length)
    return int(m.group(1))


class SmugglingTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.cases = load_cases()
        rules = ("rules:\n"
                 "  - name: loopback-origin\n"
                 "    match: { hosts: \"127.0.0.1\" }\n"
                 "    action: direct\n"
                 "  - name: denied\n"
                 "    match: { hosts: \"denied.test\" }\n"
                 "    action: deny\n")
        cls.daemon = Daemon(config=proxy_config(extra=rules))

    @classmethod
    def tearDownClass(cls):
        rc = cls.daemon.stop()
        if rc != 0:
            raise AssertionError("daemon exit code %d" % rc)

    def test_corpus_is_complete(self):
        names = {f.rsplit(".", 1)[0] for f in os.listdir(SMUGGLING_DIR)
                 if f.endswith((".http", ".expect"))}
        for name in names:
            for ext in (".http", ".expect"):
                self.assertTrue(os.path.exists(os.path.join(SMUGGLING_DIR, name + ext)),
                                name + ext)
        self.assertGreaterEqual(len(self.cases), 30)
        for name, raw, expect in self.cases:
            with self.subTest(case=name):
                self.assertEqual(set(expect) - {"origin_body", "deviation"},
                                 {"status", "connection", "origin"})
                self.assertIn(expect["connection"], ("open", "close"))
                self.assertRegex(expect["status"], r"^(-|\d{3}(,\d{3})*)$")

    def test_every_case(self):
        for name, raw, expect in self.cases:
            with self.subTest(case=name):
                self.run_case(name, raw, expect)

    def run_case(self, name, raw, expect):
        origin = RecordingOrigin()
        try:
            data = raw.replace(b"{origin}", origin.authority.encode())
            wanted = [] if expect["status"] == "-" else [int(s) for s in expect["status"].split(",")]
            statuses = []
            sock = socket.create_connection(("127.0.0.1", self.daemon.port), timeout=DEADLINE)
            try:
                sock.sendall(data)
                rfile = sock.makefile("rb")
                if expect["connection"] == "close":
                    # Everything up to the proxy's own close, which must come
                    # without the client closing first.
                    try:
                        while True:
                            status = read_response(rfile)
                            if status is None:
                                break
                            statuses.append(status)
                    except socket.timeout:
                        self.fail("%s: the connection stayed open after %s" % (name, statuses))
                    except ConnectionResetError:
                        pass
                    self.assertEqual(statuses, wanted, name)
                else:
                    for _ in wanted:
                        statuses.append(read_response(rfile))
                    self.assertEqual(statuses, wanted, name)
                    # Still in sync: a probe on the same connection gets its own answer.
                    sock.sendall(b"GET http://%s/probe HTTP/1.1\r\nHost: %s\r\n\r\n"
                                 % (origin.authority.encode(), origin.authority.encode()))
                    self.assertEqual(read_response(rfile), 200, name + ": probe")
                    sock.shutdown(socket.SHUT_WR)
                    self.assertIsNone(read_response(rfile), name + ": bytes after the probe")
            finally:
                sock.close()

            expected_heads = int(expect["origin"]) + (1 if expect["connection"] == "open" else 0)
            origin.wait_settled(expected_heads)
            with origin.lock:
                heads = [h for h in origin.heads if h != "/probe"]
                self.assertEqual(origin.problems, [], name + ": the origin got malformed bytes")
                self.assertEqual(len(heads), int(expect["origin"]),
                                 "%s: heads at the origin: %s" % (name, heads))
                self.assertFalse([h for h in origin.heads if "smuggled" in h],
                                 "%s: a hidden request reached the origin" % name)
                if "origin_body" in expect:
                    bodies = [len(r["body"]) for r in origin.complete if r["target"] != "/probe"]
                    self.assertEqual(bodies, [int(n) for n in expect["origin_body"].split(",")],
                                     name)
        finally:
            origin.close()
        self.assert_still_serving()

    def assert_still_serving(self):
        alive = RecordingOrigin()
        try:
            r = curl("http://%s/alive" % alive.authority, proxy=self.daemon.proxy_url)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual(r.stdout, "ok")
        finally:
            alive.close()


if __name__ == "__main__":
    unittest.main()
