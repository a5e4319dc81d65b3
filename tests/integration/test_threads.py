"""The daemon's threads working at the same time. Parallel clients keep the
event loop, the thread pool (scrypt verifications of proxy credentials, leaf
mints for intercepted hosts, several for one host at once) and the decision
log's writer thread busy, while SIGHUP reloads (which replace the CA state a
mint in flight still holds, and the users file) and SIGUSR1 log reopens
arrive. Written for the ThreadSanitizer build (`make tsan`), where a data race
ends the daemon; in every build it checks that each client still gets the
right answer."""
import concurrent.futures
import os
import signal
import subprocess
import tempfile
import unittest

from harness import BIN, Daemon, Origin, curl, make_cert

HOSTS = ["h%d.direct.test" % i for i in range(4)]
USERS = {"alice": "pw-alice", "bob": "pw-bob"}


def passwd(path, user, password):
    r = subprocess.run([BIN, "passwd", "--file", path, user], input=password + "\n",
                       capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        raise AssertionError("switchyard passwd failed: " + r.stderr)


class ThreadsUnderLoadTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="sy-threads-")
        t = self.tmp.name
        self.users = os.path.join(t, "users")
        for user, password in USERS.items():
            passwd(self.users, user, password)
        self.ca_dir = os.path.join(t, "ca")
        subprocess.run([BIN, "ca", "init", "--dir", self.ca_dir], check=True, capture_output=True)
        os.makedirs(os.path.join(t, "origin"))
        cert = make_cert(os.path.join(t, "origin"), names=tuple(HOSTS))
        self.origin = Origin(tls_cert=cert)
        self.log_path = os.path.join(t, "decisions.log")
        config = (
            "log: { level: info, format: json, decisions: \"%s\" }\n"
            "access:\n  connect_ports: [%d]\n  users_file: \"%s\"\n"
            "tls: { ca_dir: \"%s\", upstream_ca_file: \"%s\" }\n"
            "resolve: { %s }\n"
            "rules:\n"
            "  - name: origins\n"
            "    match: { hosts: \"*.direct.test\" }\n"
            "    action: direct\n"
            "    intercept: true\n"
            "    allow_private: true\n"
            % (self.log_path, self.origin.port, self.users, self.ca_dir, cert[0],
               ", ".join("%s: \"127.0.0.1\"" % h for h in HOSTS)))
        self.d = Daemon(config=config)

    def tearDown(self):
        rc = self.d.stop()
        self.origin.close()
        self.tmp.cleanup()
        self.assertEqual(rc, 0, "\n".join(self.d.lines))

    def fetch(self, user, password, host, path):
        """GET https://host/path through an intercepted tunnel; returns
        (CONNECT status, inner status, body)."""
        r = curl("-o", "-", "-w", "\n%{http_connect} %{http_code}",
                 "--cacert", os.path.join(self.ca_dir, "ca.crt"),
                 "--proxy-user", "%s:%s" % (user, password),
                 "https://%s:%d%s" % (host, self.origin.port, path),
                 proxy=self.d.proxy_url, timeout=120)
        body, _, codes = r.stdout.rpartition("\n")
        connect_status, inner_status = (int(c) for c in codes.split())
        return connect_status, inner_status, body

    def test_parallel_auth_mints_reloads_and_reopens(self):
        # Consecutive jobs share a host, so its first mints overlap.
        jobs = []
        for host in HOSTS:
            for user, password in sorted(USERS.items()):
                jobs.append((user, password, host, True))
                jobs.append((user, "wrong-" + password, host, False))
            jobs.append(("mallory", "whatever", host, False))
        with concurrent.futures.ThreadPoolExecutor(max_workers=6) as pool:
            futures = {
                pool.submit(self.fetch, user, password, host, "/job%d" % i): (i, ok)
                for i, (user, password, host, ok) in enumerate(jobs)
            }
            pending = set(futures)
            signals = 0
            while pending:
                # One reload and one reopen per finished job, each waited for.
                for signum, answer in ((signal.SIGHUP, r"config reloaded"),
                                       (signal.SIGUSR1, r"decision log reopened")):
                    mark = self.d.log_index()
                    self.d.send_signal(signum)
                    self.d.wait_for_log(answer, start=mark, deadline=60)
                    signals += 1
                _, pending = concurrent.futures.wait(
                    pending, return_when=concurrent.futures.FIRST_COMPLETED)
            for future, (i, ok) in futures.items():
                connect_status, inner_status, body = future.result()
                with self.subTest(job=jobs[i]):
                    if ok:
                        self.assertEqual((connect_status, inner_status), (200, 200))
                        self.assertEqual(body, "hello /job%d\n" % i)
                    else:
                        self.assertEqual(connect_status, 407)
        self.assertGreaterEqual(signals, 2)
        served = sorted(r["path"] for r in self.origin.requests)
        self.assertEqual(served, sorted("/job%d" % i for i, j in enumerate(jobs) if j[3]))


if __name__ == "__main__":
    unittest.main()
