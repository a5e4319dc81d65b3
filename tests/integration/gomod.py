"""GOPROXY trees and a scriptable origin serving them, for the module-proxy
and cache tests: valid module zips made with zipfile, request counting, a
gate that holds a response after its first bytes, and corrupt answers."""
import hashlib
import http.server
import json
import os
import threading
import urllib.parse
import zipfile

from harness import ThreadedHttpServer


def write_module(tree, path, version, files, extra_zip_bytes=0):
    """One module version in GOPROXY layout (list, .info, .mod, .zip). A
    non-zero extra_zip_bytes adds an incompressible file of that size."""
    escaped = "".join("!" + c.lower() if c.isupper() else c for c in path)
    vdir = os.path.join(tree, escaped, "@v")
    os.makedirs(vdir, exist_ok=True)
    with open(os.path.join(vdir, "list"), "a") as f:
        f.write(version + "\n")
    with open(os.path.join(vdir, version + ".info"), "w") as f:
        json.dump({"Version": version, "Time": "2024-01-02T03:04:05Z"}, f)
    with open(os.path.join(vdir, version + ".mod"), "w") as f:
        f.write(files["go.mod"])
    with zipfile.ZipFile(os.path.join(vdir, version + ".zip"), "w") as z:
        for name, text in sorted(files.items()):
            z.writestr("%s@%s/%s" % (path, version, name), text)
        if extra_zip_bytes:
            z.writestr("%s@%s/blob.bin" % (path, version), os.urandom(extra_zip_bytes),
                       compress_type=zipfile.ZIP_STORED)
    return os.path.join(vdir, version + ".zip")


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class GoproxyOrigin(ThreadedHttpServer):
    """Serves `tree` over http (or https with tls_cert) on 127.0.0.1.

    requests: every path asked, in order. gate(path, after): the response for
    `path` sends `after` body bytes, then waits until release() (or the
    origin closes). override(path, status, body): answers that instead."""

    def __init__(self, tree, tls_cert=None):
        self.tree = tree
        self.requests = []
        self.lock = threading.Lock()
        self.gates = {}
        self.overrides = {}
        self.first_bytes_sent = threading.Event()
        origin = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                # The go command (and switchyard) send '!' as %21.
                path = urllib.parse.unquote(self.path)
                with origin.lock:
                    origin.requests.append(path)
                if path in origin.overrides:
                    status, body = origin.overrides[path]
                    self._answer(status, body, "text/plain")
                    return
                local = os.path.normpath(os.path.join(origin.tree, path.lstrip("/")))
                if not local.startswith(origin.tree) or not os.path.isfile(local):
                    self._answer(404, b"not found: %s\n" % path.encode(), "text/plain")
                    return
                with open(local, "rb") as f:
                    body = f.read()
                gate = origin.gates.get(path)
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                try:
                    if gate is None:
                        self.wfile.write(body)
                        return
                    after, event = gate
                    self.wfile.write(body[:after])
                    self.wfile.flush()
                    origin.first_bytes_sent.set()
                    event.wait(60)
                    self.wfile.write(body[after:])
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def _answer(self, status, body, ctype):
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        server.block_on_close = False
        self.serve(server, tls_cert)

    def url(self, scheme="http"):
        return "%s://127.0.0.1:%d" % (scheme, self.port)

    def count(self, path):
        with self.lock:
            return self.requests.count(path)

    def gate(self, path, after):
        event = threading.Event()
        self.gates[path] = (after, event)
        return event

    def override(self, path, status, body):
        self.overrides[path] = (status, body)

    def close(self):
        for _, event in self.gates.values():
            event.set()
        super().close()
