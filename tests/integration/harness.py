"""Shared pieces of the integration tests.

Every test starts the real `switchyard` binary on an ephemeral loopback port
and drives it with real clients. Nothing here sleeps to synchronise: we wait
for log lines and ports with a deadline.
"""
import hashlib
import http.server
import json
import os
import re
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import urllib.parse

BIN = os.environ.get("SWITCHYARD_BIN", "")
DEFAULT_DEADLINE = 20.0


# What ASan, LeakSanitizer and UBSan print when they find something.
SANITIZER_REPORT = re.compile(r"ERROR: (AddressSanitizer|LeakSanitizer)|WARNING: ThreadSanitizer|runtime error: |"
                              r"SUMMARY: (AddressSanitizer|UndefinedBehaviorSanitizer)")


class Daemon:
    """A running switchyard process whose stderr is collected line by line."""

    def __init__(self, config=None, args=None, env=None, listen="127.0.0.1:0", preexec_fn=None):
        if not BIN:
            raise RuntimeError("SWITCHYARD_BIN is not set (run through ctest)")
        self.tmp = tempfile.TemporaryDirectory(prefix="sy-it-")
        cmd = [BIN]
        if config is not None:
            self.config_path = os.path.join(self.tmp.name, "switchyard.yaml")
            with open(self.config_path, "w") as f:
                f.write(config)
            cmd += ["--config", self.config_path]
        if listen:
            cmd += ["--listen", listen]
        cmd += args or []
        full_env = dict(os.environ)
        for k in list(full_env):
            if k.lower() in ("http_proxy", "https_proxy", "no_proxy", "all_proxy") or k.startswith("GO"):
                del full_env[k]
        full_env.update(env or {})
        self.lines = []
        self._cond = threading.Condition()
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, env=full_env, text=True,
                                     preexec_fn=preexec_fn)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        try:
            m = self.wait_for_log(r"listening on (\S+):(\d+)")
        except AssertionError:
            if self.proc.poll() is None:
                self.proc.kill()
            self.proc.wait()
            self._reader.join(DEFAULT_DEADLINE)
            self.proc.stdout.close()
            self.tmp.cleanup()
            raise
        self.host, self.port = m.group(1), int(m.group(2))

    def _read(self):
        for line in self.proc.stdout:
            with self._cond:
                self.lines.append(line.rstrip("\n"))
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def wait_for_log(self, pattern, deadline=DEFAULT_DEADLINE, start=0):
        """Returns the first match of `pattern` in lines[start:], waiting for it."""
        rx = re.compile(pattern)
        end = time.monotonic() + deadline
        with self._cond:
            while True:
                for line in self.lines[start:]:
                    m = rx.search(line)
                    if m:
                        return m
                if self.proc.poll() is not None and not self._reader.is_alive():
                    raise AssertionError("daemon exited (%s) before logging %r:\n%s"
                                         % (self.proc.returncode, pattern, "\n".join(self.lines)))
                left = end - time.monotonic()
                if left <= 0:
                    raise AssertionError("timed out waiting for %r:\n%s"
                                         % (pattern, "\n".join(self.lines)))
                self._cond.wait(left)

    def decisions(self):
        """The decision-log lines (format: json on stderr) seen so far, parsed."""
        with self._cond:
            lines = list(self.lines)
        out = []
        for line in lines:
            if line.startswith("{"):
                try:
                    out.append(json.loads(line))
                except ValueError:
                    pass
        return out

    def wait_for_decision(self, pred=lambda r: True, count=1, deadline=DEFAULT_DEADLINE):
        """Waits until `count` decision records satisfy `pred`; returns them."""
        end = time.monotonic() + deadline
        with self._cond:
            while True:
                found = [r for r in self.decisions_locked() if pred(r)]
                if len(found) >= count:
                    return found
                if self.proc.poll() is not None and not self._reader.is_alive():
                    raise AssertionError("daemon exited before %d decision(s):\n%s"
                                         % (count, "\n".join(self.lines)))
                left = end - time.monotonic()
                if left <= 0:
                    raise AssertionError("timed out waiting for %d decision(s); have:\n%s"
                                         % (count, "\n".join(self.lines)))
                self._cond.wait(left)

    def decisions_locked(self):
        out = []
        for line in self.lines:
            if line.startswith("{"):
                try:
                    out.append(json.loads(line))
                except ValueError:
                    pass
        return out

    def log_index(self):
        """Index to pass as `start` to wait_for_log for lines after now."""
        with self._cond:
            return len(self.lines)

    @property
    def pid(self):
        return self.proc.pid

    @property
    def proxy_url(self):
        return "http://127.0.0.1:%d" % self.port

    def send_signal(self, signum):
        self.proc.send_signal(signum)

    def stop(self, signum=signal.SIGTERM, deadline=DEFAULT_DEADLINE):
        """Stops the daemon and returns its exit code. A daemon that was
        running must exit cleanly (0) on SIGTERM/SIGINT, and no sanitizer
        (ASan, LeakSanitizer, UBSan) may have reported anything."""
        running = self.proc.poll() is None
        if running:
            self.proc.send_signal(signum)
        try:
            rc = self.proc.wait(deadline)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise AssertionError("daemon did not exit:\n" + "\n".join(self.lines))
        self._reader.join(deadline)
        self.proc.stdout.close()
        self.tmp.cleanup()
        reports = [l for l in self.lines if SANITIZER_REPORT.search(l)]
        if reports:
            raise AssertionError("sanitizer report from the daemon:\n" + "\n".join(self.lines[-80:]))
        if running and signum in (signal.SIGTERM, signal.SIGINT) and rc != 0:
            raise AssertionError("daemon exited %d after signal %d:\n%s"
                                 % (rc, signum, "\n".join(self.lines[-40:])))
        return rc

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.proc.poll() is None:
            self.stop()


def curl(*args, proxy=None, timeout=30, env=None):
    """Runs curl and returns the CompletedProcess (text mode)."""
    cmd = ["curl", "-sS", "--max-time", str(timeout)]
    if proxy:
        cmd += ["--proxy", proxy]
    cmd += list(args)
    e = {k: v for k, v in os.environ.items() if k.lower() not in ("http_proxy", "https_proxy", "no_proxy", "all_proxy")}
    e.update(env or {})
    return subprocess.run(cmd, capture_output=True, text=True, env=e, timeout=timeout + 10)


def raw_exchange(port, data, deadline=10.0, host="127.0.0.1"):
    """Sends raw bytes, returns everything received until the server closes."""
    with socket.create_connection((host, port), timeout=deadline) as s:
        s.sendall(data)
        chunks = []
        while True:
            try:
                b = s.recv(65536)
            except (ConnectionResetError, socket.timeout):
                break
            if not b:
                break
            chunks.append(b)
        return b"".join(chunks)


def proxy_config(extra="", connect_ports=(443,), listen=None, limits=None, access_extra=""):
    """A config with JSON decision lines on stderr (what Daemon.decisions reads)."""
    ports = ", ".join(str(p) for p in connect_ports)
    text = "log: { level: info, format: json, decisions: stderr }\n"
    text += "access:\n  connect_ports: [%s]\n" % ports
    if access_extra:
        text += access_extra
    if limits:
        text += "limits: { %s }\n" % ", ".join("%s: %s" % kv for kv in limits.items())
    if listen:
        text += "listen: [%s]\n" % ", ".join('"%s"' % l for l in listen)
    return text + extra


def free_port(host="127.0.0.1"):
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def make_cert(directory, names=("localhost", "127.0.0.1", "origin.test")):
    """A throwaway self-signed certificate; returns (cert_path, key_path)."""
    cert = os.path.join(directory, "origin.crt")
    key = os.path.join(directory, "origin.key")
    san = ",".join(("IP:" + n) if re.match(r"^[0-9.]+$|:", n) else ("DNS:" + n) for n in names)
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2", "-subj",
                    "/CN=" + names[0], "-addext", "subjectAltName=" + san,
                    "-keyout", key, "-out", cert],
                   check=True, capture_output=True)
    return cert, key


def interception_setup(directory, mirror_names=("mirror.test",)):
    """What an interception test needs: a CA made by `switchyard ca init` in
    DIRECTORY/ca and a certificate for the mirror(s) in DIRECTORY/mirror.
    Returns (ca_dir, ca_crt, mirror_cert)."""
    ca_dir = os.path.join(directory, "ca")
    subprocess.run([BIN, "ca", "init", "--dir", ca_dir], check=True, capture_output=True)
    mdir = os.path.join(directory, "mirror")
    os.makedirs(mdir)
    return ca_dir, os.path.join(ca_dir, "ca.crt"), make_cert(mdir, names=tuple(mirror_names))


def pattern_bytes(size, seed=b"switchyard"):
    """Deterministic bytes of `size`, produced in 1 MiB blocks (generator)."""
    block = hashlib.sha256(seed).digest() * (1 << 15)  # 1 MiB
    left = size
    while left > 0:
        n = min(left, len(block))
        yield block[:n]
        left -= n


def pattern_sha256(size, seed=b"switchyard"):
    h = hashlib.sha256()
    for b in pattern_bytes(size, seed):
        h.update(b)
    return h.hexdigest()


def read_chunked(rfile):
    """Reads a chunked body from a file object; returns the bytes."""
    out = []
    while True:
        line = rfile.readline()
        if not line:
            raise ValueError("EOF in chunked body")
        size = int(line.split(b";")[0].strip(), 16)
        if size == 0:
            while True:  # trailers up to the empty line
                t = rfile.readline()
                if t in (b"\r\n", b"\n", b""):
                    break
            return b"".join(out)
        out.append(rfile.read(size))
        rfile.readline()


class _OriginHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _record(self, body=b""):
        o = self.server.origin
        with o.lock:
            o.connections.add(self.client_address)
            o.requests.append({"method": self.command, "path": self.path,
                               "headers": [(k, v) for k, v in self.headers.items()],
                               "version": self.request_version, "body_length": len(body),
                               "body_sha256": hashlib.sha256(body).hexdigest()})

    def _read_body(self):
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return read_chunked(self.rfile)
        n = int(self.headers.get("Content-Length", "0") or 0)
        return self.rfile.read(n) if n else b""

    def _send(self, status, body, ctype="text/plain", extra=()):
        bodyless = status in (204, 304) or status < 200
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        if status != 204:
            self.send_header("Content-Length", str(len(body)))
        for k, v in extra:
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD" and not bodyless:
            self.wfile.write(body)

    def _query(self):
        q = urllib.parse.urlsplit(self.path).query
        return {k: v[0] for k, v in urllib.parse.parse_qs(q).items()}

    def do_HEAD(self):
        self.do_GET()

    def do_GET(self):
        body = self._read_body()
        self._record(body)
        path = urllib.parse.urlsplit(self.path).path
        q = self._query()
        if path == "/headers":
            self._send(200, json.dumps(self.headers.items()).encode(), "application/json")
        elif path == "/big":
            size = int(q.get("size", "1048576"))
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(size))
            self.end_headers()
            if self.command != "HEAD":
                for b in pattern_bytes(size):
                    self.wfile.write(b)
        elif path == "/chunked":
            size = int(q.get("size", "100000"))
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for b in pattern_bytes(size):
                for i in range(0, len(b), 50000):
                    piece = b[i:i + 50000]
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            self.wfile.write(b"0\r\n\r\n")
        elif path == "/until-close":
            size = int(q.get("size", "100000"))
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Connection", "close")
            self.end_headers()
            for b in pattern_bytes(size):
                self.wfile.write(b)
            self.close_connection = True
        elif path == "/slow":
            ms = int(q.get("ms", "1000"))
            time.sleep(ms / 1000.0)
            self._send(200, b"slow done\n")
        elif path == "/status":
            code = int(q.get("code", "200"))
            self._send(code, ("status %d\n" % code).encode())
        else:
            self._send(200, ("hello %s\n" % self.path).encode())

    def do_POST(self):
        if urllib.parse.urlsplit(self.path).path == "/early":
            # Answers before reading the body, then closes (like a 413), the
            # way nginx's lingering close does: FIN first, then the body is
            # read and dropped until the peer closes. Closing with the body
            # unread would send an RST that can destroy the 413 in flight.
            self._record()
            self.close_connection = True
            self._send(413, b"too large\n", extra=[("Connection", "close")])
            self.wfile.flush()
            try:
                self.connection.shutdown(socket.SHUT_WR)
                self.connection.settimeout(5)
                while self.connection.recv(65536):
                    pass
            except OSError:
                pass
            return
        body = self._read_body()
        self._record(body)
        reply = json.dumps({"length": len(body),
                            "sha256": hashlib.sha256(body).hexdigest()}).encode()
        self._send(200, reply, "application/json")

    do_PUT = do_POST


class _OriginServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request, client_address):
        pass  # clients that go away midway are part of the tests


class _OriginServer6(_OriginServer):
    address_family = socket.AF_INET6


class ThreadedHttpServer:
    """Base for the loopback HTTP(S) servers of the tests: serve() runs an
    http.server-style server in a daemon thread (TLS with `tls_cert`, a
    (certfile, keyfile) pair) and sets self.server, self.port and
    self.thread; close() and the context manager stop it."""

    def serve(self, server, tls_cert=None):
        self.server = server
        if tls_cert:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(*tls_cert)
            self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class Origin(ThreadedHttpServer):
    """A loopback HTTP(S) origin in a thread; records connections and requests."""

    def __init__(self, tls_cert=None, host="127.0.0.1"):
        self.lock = threading.Lock()
        self.connections = set()
        self.requests = []
        cls = _OriginServer6 if ":" in host else _OriginServer
        server = cls((host, 0), _OriginHandler)
        server.origin = self
        self.host = host
        self.serve(server, tls_cert)

    def url(self, path="/", scheme="http", host=None):
        h = host or self.host
        if ":" in h:
            h = "[%s]" % h
        return "%s://%s:%d%s" % (scheme, h, self.port, path)


class TcpServer:
    """A raw TCP server in a thread; `handler(conn)` runs per connection."""

    def __init__(self, handler, host="127.0.0.1", backlog=16):
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, 0))
        self.sock.listen(backlog)
        self.port = self.sock.getsockname()[1]
        self.handler = handler
        self._stop = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._run, args=(conn,), daemon=True).start()

    def _run(self, conn):
        try:
            self.handler(conn)
        except OSError:
            pass
        finally:
            conn.close()

    def close(self):
        self._stop = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def recv_until(sock, marker, deadline=10.0):
    """Reads until `marker` is seen; returns everything read."""
    sock.settimeout(deadline)
    data = b""
    while marker not in data:
        b = sock.recv(65536)
        if not b:
            break
        data += b
    return data


def recv_all(sock, deadline=10.0):
    """Reads until EOF; returns everything read."""
    sock.settimeout(deadline)
    chunks = []
    while True:
        try:
            b = sock.recv(65536)
        except ConnectionResetError:
            break
        if not b:
            break
        chunks.append(b)
    return b"".join(chunks)


def switchyard_decides():
    """True once rules::decide() is real: a daemon whose only rule denies
    probe.test answers 403 for it (the placeholder sent everything direct)."""
    if not BIN:
        return False
    config = ("rules:\n  - name: probe\n    match: { hosts: \"probe.test\" }\n"
              "    action: deny\n")
    try:
        d = Daemon(config=config)
    except (AssertionError, OSError):
        return False
    try:
        reply = raw_exchange(d.port, b"GET http://probe.test/ HTTP/1.1\r\nHost: probe.test\r\n\r\n")
    finally:
        d.stop()
    return reply.startswith(b"HTTP/1.1 403 ")


# ---------------------------------------------------------------------------
# Helpers of the fault-injection and chaos tests (test_faults.py,
# test_chaos.py).

def wait_until(pred, deadline=DEFAULT_DEADLINE, what="condition", poll=0.02):
    """Polls `pred` (a cheap check of state another thread or process
    changes) until it is true; returns its value."""
    end = time.monotonic() + deadline
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError("timed out waiting for " + what)
        time.sleep(poll)


def admin_port(daemon):
    """The port of the daemon's admin listener (`admin: "127.0.0.1:0"`)."""
    return int(daemon.wait_for_log(r"admin listening on \S+:(\d+)").group(1))


def scrape_metrics(port, host="127.0.0.1", deadline=10.0):
    """GET /metrics on the admin listener; returns {sample: value}, the
    sample written exactly as rendered (`name{label="v",...}`)."""
    reply = raw_exchange(port, b"GET /metrics HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n",
                         deadline=deadline, host=host)
    head, _, body = reply.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200 "):
        raise AssertionError("/metrics answered %r" % head[:200])
    samples = {}
    for line in body.decode().splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            samples[name] = float(value)
    return samples


class HttpReply:
    """One response as a client saw it, and how its connection ended."""

    def __init__(self, data, reset):
        self.raw = data
        self.reset = reset  # the connection ended with a RST
        self.status = None
        self.reason = ""
        self.headers = {}  # lowercase name -> last value
        self.body = b""
        self.complete = False  # the body's framing says it is all there
        head, sep, rest = data.partition(b"\r\n\r\n")
        if not sep:
            return
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ", 2)
        if len(parts) < 2 or not parts[1].isdigit():
            return
        self.status = int(parts[1])
        self.reason = parts[2] if len(parts) > 2 else ""
        for line in lines[1:]:
            k, _, v = line.partition(":")
            self.headers[k.strip().lower()] = v.strip()
        if "chunked" in self.headers.get("transfer-encoding", "").lower():
            self.body, self.complete = _dechunk(rest)
        elif "content-length" in self.headers:
            n = int(self.headers["content-length"])
            self.body = rest[:n]
            self.complete = len(rest) >= n
        else:
            self.body = rest
            self.complete = not reset

    def proxy_error(self):
        """The `error=` token of our Proxy-Status member, or None."""
        m = re.search(r"switchyard; error=([a-z_]+)", self.headers.get("proxy-status", ""))
        return m.group(1) if m else None


def _dechunk(data):
    """(body, complete) of a chunked body that may be cut short."""
    out = []
    pos = 0
    while True:
        eol = data.find(b"\r\n", pos)
        if eol < 0:
            return b"".join(out), False
        try:
            size = int(data[pos:eol].split(b";")[0].strip(), 16)
        except ValueError:
            return b"".join(out), False
        if size == 0:
            return b"".join(out), True
        start = eol + 2
        piece = data[start:start + size]
        out.append(piece)
        if len(piece) < size or data[start + size:start + size + 2] != b"\r\n":
            return b"".join(out), False
        pos = start + size + 2


def read_reply(sock, deadline=20.0):
    """Reads until the server closes; returns an HttpReply."""
    sock.settimeout(deadline)
    chunks = []
    reset = False
    while True:
        try:
            b = sock.recv(65536)
        except ConnectionResetError:
            reset = True
            break
        if not b:
            break
        chunks.append(b)
    return HttpReply(b"".join(chunks), reset)


def proxy_get(port, url, deadline=20.0, host="127.0.0.1"):
    """GET `url` (absolute form) through the proxy with Connection: close."""
    authority = urllib.parse.urlsplit(url).netloc
    with socket.create_connection((host, port), timeout=deadline) as s:
        s.sendall(("GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n"
                   % (url, authority)).encode())
        return read_reply(s, deadline)


def process_cpu_seconds(pid):
    """utime + stime of a process from /proc/<pid>/stat, in seconds."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # After the command: state is field 3; utime and stime are 14 and 15.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class RecordingTlsServer(ThreadedHttpServer):
    """A loopback https server in a thread running `handler_class` (a
    BaseHTTPRequestHandler, e.g. SimpleHTTPRequestHandler with `directory`),
    recording the path of every GET/HEAD it receives."""

    def __init__(self, tls_cert, handler_class, directory=None, host="127.0.0.1"):
        self.lock = threading.Lock()
        self.requests = []  # (method, path)
        server = self

        class Recording(handler_class):
            def __init__(self, *args, **kwargs):
                if directory is not None:
                    kwargs["directory"] = directory
                super().__init__(*args, **kwargs)

            def _note(self):
                with server.lock:
                    server.requests.append((self.command, self.path))

            def do_GET(self):
                self._note()
                super().do_GET()

            def do_HEAD(self):
                self._note()
                super().do_HEAD()

        cls = _OriginServer6 if ":" in host else _OriginServer
        self.serve(cls((host, 0), Recording), tls_cert)

    def paths(self):
        """The paths of the requests received so far, in order."""
        with self.lock:
            return [p for _, p in self.requests]
