"""Shared pieces of the integration tests.

Every test starts the real `switchyard` binary on an ephemeral loopback port
and drives it with real clients. Nothing here sleeps to synchronise: we wait
for log lines and ports with a deadline.
"""
import os
import queue
import re
import signal
import socket
import subprocess
import tempfile
import threading
import time

BIN = os.environ.get("SWITCHYARD_BIN", "")
DEFAULT_DEADLINE = 20.0


class Daemon:
    """A running switchyard process whose stderr is collected line by line."""

    def __init__(self, config=None, args=None, env=None, listen="127.0.0.1:0"):
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
                                     stderr=subprocess.STDOUT, env=full_env, text=True)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        m = self.wait_for_log(r"listening on (\S+):(\d+)")
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

    @property
    def proxy_url(self):
        return "http://127.0.0.1:%d" % self.port

    def send_signal(self, signum):
        self.proc.send_signal(signum)

    def stop(self, signum=signal.SIGTERM, deadline=DEFAULT_DEADLINE):
        """Stops the daemon and returns its exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signum)
        try:
            rc = self.proc.wait(deadline)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise AssertionError("daemon did not exit:\n" + "\n".join(self.lines))
        self._reader.join(deadline)
        self.tmp.cleanup()
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
