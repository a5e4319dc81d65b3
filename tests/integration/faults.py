"""Upstreams that fail on purpose, for the fault-injection and chaos tests.

FaultOrigin is a threaded loopback server (plain or TLS) whose behaviour per
request is chosen by the request path: the first path segment names the
fault, the rest are its arguments (`/status/403`, `/drip-body`). A test can
also route a path to any behaviour of its own with `route()`. Every
behaviour closes the connection when it is done, so no keep-alive state
leaks from one case into the next.

Besides it: a closed port (refused), a listener whose accept queue is full
(connect timeout, the technique of test_connect.py), and a small CA that
signs good and expired leaves with the `openssl` CLI.
"""
import os
import socket
import ssl
import struct
import subprocess
import threading

# How long the drip behaviours wait between two bytes. Tests configure the
# daemon's idle and response timeouts well below it.
DEFAULT_DRIP_SECONDS = 3.0

HEAD_LIMIT = 64 * 1024


class Request:
    """The request line and fields a FaultOrigin read."""

    def __init__(self, method, path, version, headers):
        self.method = method
        self.path = path
        self.version = version
        self.headers = headers  # list of (name, value)

    @property
    def segments(self):
        return [s for s in self.path.split("?", 1)[0].split("/") if s]


def _send_head(conn, status, reason, fields):
    head = "HTTP/1.1 %d %s\r\n" % (status, reason)
    head += "".join("%s: %s\r\n" % kv for kv in fields)
    conn.sendall(head.encode() + b"\r\n")


def _reset(conn):
    """Closes with SO_LINGER 0: the peer gets a RST instead of a FIN."""
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.close()


# ---------------------------------------------------------------------------
# Behaviours: each gets (origin, conn, request) and writes whatever it wants.
# The connection is closed by the caller afterwards unless the behaviour
# closed it itself.

def ok(origin, conn, req):
    body = b"ok " + req.path.encode() + b"\n"
    _send_head(conn, 200, "OK", [("Content-Type", "text/plain"),
                                 ("Content-Length", str(len(body))), ("Connection", "close")])
    conn.sendall(body)


def status(origin, conn, req):
    """`/status/NNN`: that status with a short body."""
    code = int(req.segments[1]) if len(req.segments) > 1 else 500
    body = b"fault origin says %d\n" % code
    _send_head(conn, code, "Fault", [("Content-Type", "text/plain"),
                                      ("Content-Length", str(len(body))),
                                      ("Connection", "close")])
    conn.sendall(body)


def garbage(origin, conn, req):
    """Bytes that are not HTTP at all, then a clean close."""
    conn.sendall(b"\x16\x03\x01\x00\x00GARBAGE \x00\xff\xfe not an http response\r\n\r\n")


def reset_head(origin, conn, req):
    """A RST before any byte of a response."""
    _reset(conn)


def reset(origin, conn, req):
    """A 200 that promises 100000 bytes, sends 1000, then a RST."""
    _send_head(conn, 200, "OK", [("Content-Type", "application/octet-stream"),
                                 ("Content-Length", "100000"), ("Connection", "close")])
    conn.sendall(b"r" * 1000)
    _reset(conn)


def silent(origin, conn, req):
    """Reads the request and never answers (until the peer gives up)."""
    _wait_for_close(origin, conn)


def drip_head(origin, conn, req):
    """The status line, one byte per drip interval."""
    _drip(origin, conn, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")


def drip_body(origin, conn, req):
    """A whole head at once, then the body one byte per drip interval."""
    _send_head(conn, 200, "OK", [("Content-Type", "text/plain"), ("Content-Length", "20"),
                                 ("Connection", "close")])
    _drip(origin, conn, b"d" * 20)


def truncated_chunked(origin, conn, req):
    """A chunked 200 whose terminating chunk never comes: a FIN after one chunk."""
    _send_head(conn, 200, "OK", [("Content-Type", "text/plain"), ("Transfer-Encoding", "chunked"),
                                 ("Connection", "close")])
    conn.sendall(b"10\r\n" + b"c" * 16 + b"\r\n")
    conn.close()


def bad_chunk(origin, conn, req):
    """A chunked 200 whose second chunk size is garbage."""
    _send_head(conn, 200, "OK", [("Content-Type", "text/plain"), ("Transfer-Encoding", "chunked"),
                                 ("Connection", "close")])
    conn.sendall(b"10\r\n" + b"c" * 16 + b"\r\nzz-not-hex\r\n\r\n")


def big_header(origin, conn, req):
    """A 200 with one response field of 1 MiB."""
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Big: ")
    chunk = b"b" * 65536
    for _ in range(16):
        conn.sendall(chunk)
    conn.sendall(b"\r\n\r\nok")


def _flood(origin, conn, head, unit):
    """Sends `head`, then `unit` until origin.flood_limit bytes went out (or
    the peer hangs up), counting the bytes the peer accepted in
    origin.pushed; sets origin.flood_done at the end."""
    # A small send buffer on our side, so that what the daemon took is
    # mostly what it holds (its receive buffer, its queue to the client).
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)
    try:
        conn.sendall(head)
        while not origin.stopping.is_set() and origin.pushed < origin.flood_limit:
            conn.sendall(unit)
            with origin.lock:
                origin.pushed += len(unit)
    finally:
        origin.flood_done.set()


def interim_flood(origin, conn, req):
    """103 Early Hints (1 KiB each) without end, never a final response."""
    hint = b"HTTP/1.1 103 Early Hints\r\nLink: </" + b"h" * 960 + b">; rel=preload\r\n\r\n"
    _flood(origin, conn, b"", hint * 64)


def body_flood(origin, conn, req):
    """A 200 of 1 GiB, sent as fast as the peer takes it."""
    _flood(origin, conn, b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % (1 << 30),
           b"f" * 65536)


BEHAVIOURS = {
    "ok": ok,
    "status": status,
    "garbage": garbage,
    "reset-head": reset_head,
    "reset": reset,
    "silent": silent,
    "drip-head": drip_head,
    "drip-body": drip_body,
    "truncated-chunked": truncated_chunked,
    "bad-chunk": bad_chunk,
    "big-header": big_header,
    "interim-flood": interim_flood,
    "body-flood": body_flood,
}


def _wait_for_close(origin, conn):
    """Blocks until the peer closes or the origin shuts down."""
    conn.settimeout(0.5)
    while not origin.stopping.is_set():
        try:
            if not conn.recv(4096):
                return
        except socket.timeout:
            continue
        except (OSError, ssl.SSLError):
            return


def _drip(origin, conn, data):
    for i in range(len(data)):
        conn.sendall(data[i:i + 1])
        if i + 1 < len(data) and origin.stopping.wait(origin.drip_seconds):
            return


def _read_head(conn):
    data = b""
    while b"\r\n\r\n" not in data:
        b = conn.recv(65536)
        if not b:
            return None
        data += b
        if len(data) > HEAD_LIMIT:
            return None
    head = data.split(b"\r\n\r\n", 1)[0].decode("latin-1")
    lines = head.split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3:
        return None
    headers = []
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers.append((k.strip(), v.strip()))
    return Request(parts[0], parts[1], parts[2], headers)


class FaultOrigin:
    """A loopback origin whose answer is picked by the request path.

    `tls`: (cert_path, key_path) to speak TLS. `drip_seconds`: the pace of
    the drip behaviours. `accepted` counts TCP connections, `requests` the
    paths read (in order), so a test can tell whether the daemon came here.
    """

    def __init__(self, tls=None, drip_seconds=DEFAULT_DRIP_SECONDS, host="127.0.0.1"):
        self.drip_seconds = drip_seconds
        self.stopping = threading.Event()
        self.lock = threading.Lock()
        self.accepted = 0
        self.requests = []
        self.routes = {}
        self.pushed = 0  # bytes the flood behaviours got rid of
        self.flood_limit = 32 << 20
        self.flood_done = threading.Event()
        self.ctx = None
        if tls:
            self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.ctx.load_cert_chain(*tls)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, 0))
        self.sock.listen(64)
        self.host = host
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def route(self, path, behaviour):
        """Answers requests for exactly `path` (without query) with `behaviour`."""
        self.routes[path] = behaviour

    def url(self, path="/", host=None, scheme=None):
        scheme = scheme or ("https" if self.ctx else "http")
        return "%s://%s:%d%s" % (scheme, host or self.host, self.port, path)

    def counts(self):
        with self.lock:
            return self.accepted, len(self.requests)

    def _serve(self):
        while not self.stopping.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with self.lock:
                self.accepted += 1
            threading.Thread(target=self._run, args=(conn,), daemon=True).start()

    def _run(self, conn):
        try:
            if self.ctx is not None:
                conn.settimeout(10)
                conn = self.ctx.wrap_socket(conn, server_side=True)
                conn.settimeout(None)
            req = _read_head(conn)
            if req is None:
                return
            with self.lock:
                self.requests.append(req.path)
            behaviour = self.routes.get(req.path.split("?", 1)[0])
            if behaviour is None:
                name = req.segments[0] if req.segments else "ok"
                behaviour = BEHAVIOURS.get(name, ok)
            behaviour(self, conn, req)
        except (OSError, ssl.SSLError, ValueError):
            pass  # the daemon hanging up on a fault is the point
        finally:
            try:
                conn.close()
            except OSError:
                pass

    def close(self):
        self.stopping.set()
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def closed_port(host="127.0.0.1"):
    """A port nobody listens on (bound, then released): connects are refused."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class BlackholeListener:
    """A listener whose accept queue is full, so that further SYNs are
    dropped and a connect neither succeeds nor fails: a connect timeout.
    (The same trick as test_connect.py's test_connect_timeout_is_504.)"""

    def __init__(self, host="127.0.0.1"):
        self.sock = socket.socket()
        self.sock.bind((host, 0))
        self.sock.listen(0)
        self.port = self.sock.getsockname()[1]
        self.fillers = []
        for _ in range(3):
            c = socket.socket()
            c.setblocking(False)
            c.connect_ex((host, self.port))
            self.fillers.append(c)

    def close(self):
        for c in self.fillers:
            c.close()
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class TestCA:
    """A throwaway CA made with the openssl CLI, and leaves it signs.

    `leaf(name)` is valid now for 2 days; `leaf(name, expired=True)` was valid
    for one day in 2020. Both carry the name as their only subjectAltName.
    """

    def __init__(self, directory):
        self.dir = directory
        os.makedirs(directory, exist_ok=True)
        self.cert = os.path.join(directory, "ca.crt")
        self.key = os.path.join(directory, "ca.key")
        self._openssl("req", "-x509", "-newkey", "ec", "-pkeyopt",
                      "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2", "-subj",
                      "/CN=Switchyard fault-test CA", "-keyout", self.key, "-out", self.cert)
        os.makedirs(os.path.join(directory, "issued"), exist_ok=True)
        open(os.path.join(directory, "index.txt"), "w").close()
        with open(os.path.join(directory, "serial"), "w") as f:
            f.write("1000\n")
        self.cnf = os.path.join(directory, "ca.cnf")
        with open(self.cnf, "w") as f:
            f.write("[ca]\ndefault_ca = fault_ca\n"
                    "[fault_ca]\ndatabase = %s\nnew_certs_dir = %s\nserial = %s\n"
                    "default_md = sha256\npolicy = any\nunique_subject = no\n"
                    "[any]\ncommonName = supplied\n"
                    % (os.path.join(directory, "index.txt"), os.path.join(directory, "issued"),
                       os.path.join(directory, "serial")))

    def _openssl(self, *args):
        subprocess.run(["openssl"] + list(args), check=True, capture_output=True)

    def leaf(self, name, expired=False):
        """Returns (cert_path, key_path) for `name`."""
        base = os.path.join(self.dir, name + ("-expired" if expired else ""))
        ext = base + ".ext"
        with open(ext, "w") as f:
            f.write("[leaf]\nbasicConstraints = CA:FALSE\nsubjectAltName = DNS:%s\n" % name)
        self._openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                      "-nodes", "-subj", "/CN=" + name, "-keyout", base + ".key",
                      "-out", base + ".csr")
        dates = (["-startdate", "20200101000000Z", "-enddate", "20200102000000Z"] if expired
                 else ["-days", "2"])
        self._openssl("ca", "-batch", "-config", self.cnf, "-cert", self.cert, "-keyfile",
                      self.key, "-in", base + ".csr", "-out", base + ".crt", "-notext",
                      "-extfile", ext, "-extensions", "leaf", *dates)
        return base + ".crt", base + ".key"
