"""`switchyard ca init`: creates the local CA, refuses to overwrite it without
--force, and leaves a certificate and key that OpenSSL itself accepts."""
import os
import re
import stat
import subprocess
import tempfile
import unittest

from harness import BIN


def ca_init(*args, cwd=None):
    if not BIN:
        raise RuntimeError("SWITCHYARD_BIN is not set (run through ctest)")
    return subprocess.run([BIN, "ca", "init", *args], capture_output=True, text=True,
                          timeout=60, cwd=cwd)


def openssl(*args):
    return subprocess.run(["openssl", *args], capture_output=True, text=True, timeout=60)


def read(path):
    with open(path, "rb") as f:
        return f.read()


def printed_fingerprint(stdout):
    m = re.search(r"^SHA-256 fingerprint: ([0-9A-F:]+)$", stdout, re.M)
    return m.group(1) if m else None


def openssl_fingerprint(cert):
    out = openssl("x509", "-in", cert, "-noout", "-fingerprint", "-sha256")
    assert out.returncode == 0, out.stderr
    return out.stdout.strip().split("=", 1)[1]


class CaInitTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="sy-ca-")
        self.addCleanup(self.tmp.cleanup)
        self.dir = os.path.join(self.tmp.name, "ca")
        self.cert = os.path.join(self.dir, "ca.crt")
        self.key = os.path.join(self.dir, "ca.key")

    def test_init_refuse_force(self):
        first = ca_init("--dir", self.dir)
        self.assertEqual(first.returncode, 0, first.stderr)
        self.assertIn(self.cert, first.stdout)
        self.assertIn(self.key, first.stdout)
        fp1 = printed_fingerprint(first.stdout)
        self.assertIsNotNone(fp1, first.stdout)
        self.assertEqual(fp1, openssl_fingerprint(self.cert))
        self.assertEqual(stat.S_IMODE(os.stat(self.key).st_mode), 0o600)
        self.assertEqual(stat.S_IMODE(os.stat(self.cert).st_mode), 0o644)
        self.assertEqual(stat.S_IMODE(os.stat(self.dir).st_mode), 0o700)
        cert_bytes, key_bytes = read(self.cert), read(self.key)

        # A second init must not destroy the CA that clients already trust.
        second = ca_init("--dir", self.dir)
        self.assertEqual(second.returncode, 1)
        self.assertIn("already exists", second.stderr)
        self.assertIn("--force", second.stderr)
        self.assertEqual(second.stdout, "")
        self.assertEqual(read(self.cert), cert_bytes)
        self.assertEqual(read(self.key), key_bytes)

        forced = ca_init("--dir", self.dir, "--force")
        self.assertEqual(forced.returncode, 0, forced.stderr)
        fp3 = printed_fingerprint(forced.stdout)
        self.assertEqual(fp3, openssl_fingerprint(self.cert))
        self.assertNotEqual(fp3, fp1)
        self.assertNotEqual(read(self.key), key_bytes)
        self.assertEqual(stat.S_IMODE(os.stat(self.key).st_mode), 0o600)
        self.assertEqual(sorted(os.listdir(self.dir)), ["ca.crt", "ca.key"])

    def test_openssl_reads_a_ca(self):
        r = ca_init("--dir", self.dir)
        self.assertEqual(r.returncode, 0, r.stderr)
        text = openssl("x509", "-in", self.cert, "-noout", "-text")
        self.assertEqual(text.returncode, 0, text.stderr)
        for needle in ("CA:TRUE, pathlen:0", "X509v3 Basic Constraints: critical",
                       "X509v3 Key Usage: critical", "Certificate Sign, CRL Sign",
                       "X509v3 Subject Key Identifier", "NIST CURVE: P-256",
                       "ecdsa-with-SHA256", "CN = Switchyard local CA ("):
            self.assertIn(needle, text.stdout)
        self.assertEqual(stat.S_IMODE(os.stat(self.key).st_mode), 0o600)

        # Self-signed and valid as its own trust anchor.
        verify = openssl("verify", "-CAfile", self.cert, self.cert)
        self.assertEqual(verify.returncode, 0, verify.stdout + verify.stderr)
        # The key is the certificate's.
        from_key = openssl("pkey", "-in", self.key, "-pubout")
        from_cert = openssl("x509", "-in", self.cert, "-noout", "-pubkey")
        self.assertEqual(from_key.returncode, 0, from_key.stderr)
        self.assertEqual(from_key.stdout, from_cert.stdout)
        # About ten years: still valid in 9 years, not in 11.
        year = 365 * 86400
        self.assertEqual(openssl("x509", "-in", self.cert, "-noout",
                                 "-checkend", str(9 * year)).returncode, 0)
        self.assertNotEqual(openssl("x509", "-in", self.cert, "-noout",
                                    "-checkend", str(11 * year)).returncode, 0)

    def test_relative_dir_and_existing_dir(self):
        r = ca_init("--dir", "rel/ca", cwd=self.tmp.name)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(stat.S_IMODE(os.stat(os.path.join(self.tmp.name, "rel/ca/ca.key"))
                                      .st_mode), 0o600)
        existing = os.path.join(self.tmp.name, "existing")
        os.mkdir(existing, 0o755)
        os.chmod(existing, 0o755)
        r = ca_init("--dir", existing)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(stat.S_IMODE(os.stat(existing).st_mode), 0o755)
        self.assertEqual(stat.S_IMODE(os.stat(os.path.join(existing, "ca.key")).st_mode), 0o600)

    def test_unusable_directory(self):
        blocker = os.path.join(self.tmp.name, "file")
        with open(blocker, "w") as f:
            f.write("x")
        for d, message in ((blocker, "not a directory"),
                           (os.path.join(blocker, "ca"), "Not a directory")):
            with self.subTest(dir=d):
                r = ca_init("--dir", d)
                self.assertEqual(r.returncode, 1)
                self.assertIn(message, r.stderr)
                self.assertEqual(r.stdout, "")
        # Missing --dir is a usage error.
        r = ca_init()
        self.assertNotEqual(r.returncode, 0)

    @unittest.skipIf(os.geteuid() == 0, "root ignores directory permissions")
    def test_read_only_directory(self):
        ro = os.path.join(self.tmp.name, "ro")
        os.mkdir(ro, 0o500)
        self.addCleanup(os.chmod, ro, 0o700)
        r = ca_init("--dir", ro)
        self.assertEqual(r.returncode, 1)
        self.assertIn("Permission denied", r.stderr)
        self.assertIn(ro, r.stderr)
        self.assertEqual(os.listdir(ro), [])


if __name__ == "__main__":
    unittest.main()
