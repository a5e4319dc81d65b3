"""`switchyard passwd`: adds, changes and deletes users in the users file,
which it replaces atomically (mode 0600 for a new file), keeping every other
line byte for byte. Each stored hash is checked independently with Python's
hashlib.scrypt (OpenSSL underneath, but not our code path).

ProxyAuthDaemonTest then runs the daemon with that file and drives it with
curl --proxy-user: 407 + Proxy-Authenticate without or with wrong
credentials, the user name in the decision log, the credentials nowhere in
it, and a SIGHUP that picks up a changed password."""
import base64
import hashlib
import os
import re
import signal
import stat
import subprocess
import tempfile
import unittest

from harness import BIN, Daemon, Origin, curl, make_cert, proxy_config

LINE_RE = re.compile(r"^([^:]+):scrypt\$(\d+)\$(\d+)\$(\d+)\$([A-Za-z0-9+/=]+)\$([A-Za-z0-9+/=]+)$")


def passwd(*args, stdin=b""):
    if not BIN:
        raise RuntimeError("SWITCHYARD_BIN is not set (run through ctest)")
    return subprocess.run([BIN, "passwd", *args], input=stdin, capture_output=True, timeout=60)


def read(path):
    with open(path, "rb") as f:
        return f.read()


def write(path, data, mode=0o600):
    with open(path, "wb") as f:
        f.write(data)
    os.chmod(path, mode)


def scrypt_matches(line, password):
    """Checks a users-file line against `password` with hashlib.scrypt."""
    m = LINE_RE.match(line)
    assert m, "not a scrypt line: %r" % line
    n, r, p = int(m.group(2)), int(m.group(3)), int(m.group(4))
    salt = base64.b64decode(m.group(5), validate=True)
    key = base64.b64decode(m.group(6), validate=True)
    derived = hashlib.scrypt(password, salt=salt, n=n, r=r, p=p, maxmem=256 << 20,
                             dklen=len(key))
    return derived == key


def pbkdf2_line(user, password, salt=b"saltsalt", iterations=1000):
    key = hashlib.pbkdf2_hmac("sha256", password, salt, iterations, 32)
    return "%s:pbkdf2-sha256$%d$%s$%s" % (user, iterations, base64.b64encode(salt).decode(),
                                          base64.b64encode(key).decode())


class PasswdCliTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="sy-passwd-")
        self.addCleanup(self.tmp.cleanup)
        self.file = os.path.join(self.tmp.name, "users")

    def lines(self):
        return read(self.file).decode().split("\n")

    def assert_only_users_file(self):
        self.assertEqual(sorted(os.listdir(self.tmp.name)), ["users"])

    def test_add_creates_private_file_with_scrypt_hash(self):
        r = passwd("--file", self.file, "alice", stdin=b"s3cret\n")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout.decode(), "user alice added to %s\n" % self.file)
        self.assertEqual(stat.S_IMODE(os.stat(self.file).st_mode), 0o600)
        content = read(self.file).decode()
        self.assertTrue(content.endswith("\n"))
        line = content[:-1]
        self.assertNotIn("\n", line)
        m = LINE_RE.match(line)
        self.assertTrue(m, line)
        self.assertEqual(m.group(1), "alice")
        self.assertEqual((m.group(2), m.group(3), m.group(4)), ("32768", "8", "1"))
        self.assertEqual(len(base64.b64decode(m.group(5))), 16)
        self.assertEqual(len(base64.b64decode(m.group(6))), 32)
        self.assertTrue(scrypt_matches(line, b"s3cret"))
        self.assertFalse(scrypt_matches(line, b"s3cret\n"))
        self.assertFalse(scrypt_matches(line, b"S3cret"))
        self.assertNotIn(b"s3cret", r.stdout + r.stderr)
        self.assert_only_users_file()

    def test_change_keeps_other_lines_byte_for_byte(self):
        bob = pbkdf2_line("bob", b"bobpw")
        original = ("# switchyard users\n\n%s\nalice:scrypt$16384$8$1$AAAAAAAAAAAAAAAAAAAAAA==$"
                    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n  \n%s" % (
                        bob, pbkdf2_line("zed", b"zedpw"))).encode()
        write(self.file, original)
        before = self.lines()
        inode = os.stat(self.file).st_ino
        r = passwd("--file", self.file, "alice", stdin=b"new password\n")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout.decode(), "user alice changed in %s\n" % self.file)
        self.assertEqual(r.stderr, b"")
        after = self.lines()
        # Same line count (the missing final newline is added), alice in place.
        self.assertEqual(after[-1], "")
        self.assertEqual(len(after), len(before) + 1)
        for i, old in enumerate(before):
            if i == 3:
                self.assertNotEqual(after[i], old)
                self.assertTrue(scrypt_matches(after[i], b"new password"))
            else:
                self.assertEqual(after[i], old)
        # Replaced by rename, not rewritten in place.
        self.assertNotEqual(os.stat(self.file).st_ino, inode)
        self.assert_only_users_file()

    def test_same_password_twice_gets_a_new_salt(self):
        self.assertEqual(passwd("--file", self.file, "alice", stdin=b"pw\n").returncode, 0)
        first = self.lines()[0]
        self.assertEqual(passwd("--file", self.file, "alice", stdin=b"pw\n").returncode, 0)
        second = self.lines()[0]
        self.assertNotEqual(first, second)
        self.assertTrue(scrypt_matches(first, b"pw"))
        self.assertTrue(scrypt_matches(second, b"pw"))

    def test_duplicate_entries_collapse_into_the_first(self):
        write(self.file, ("%s\n%s\n%s\n" % (pbkdf2_line("alice", b"a"), pbkdf2_line("bob", b"b"),
                                            pbkdf2_line("alice", b"c"))).encode())
        r = passwd("--file", self.file, "alice", stdin=b"pw\n")
        self.assertEqual(r.returncode, 0, r.stderr)
        lines = self.lines()
        self.assertEqual(len(lines), 3)
        self.assertTrue(lines[0].startswith("alice:scrypt$"))
        self.assertTrue(lines[1].startswith("bob:"))

    def test_delete(self):
        bob = pbkdf2_line("bob", b"bobpw")
        write(self.file, ("%s\n%s\n# end\n" % (pbkdf2_line("alice", b"a"), bob)).encode())
        r = passwd("--file", self.file, "--delete", "alice")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout.decode(), "user alice deleted from %s\n" % self.file)
        self.assertEqual(read(self.file), ("%s\n# end\n" % bob).encode())
        # Again: the user is gone, exit 1, nothing touched.
        content, inode = read(self.file), os.stat(self.file).st_ino
        r = passwd("--file", self.file, "--delete", "alice")
        self.assertEqual(r.returncode, 1)
        self.assertIn(b'no user "alice"', r.stderr)
        self.assertEqual(read(self.file), content)
        self.assertEqual(os.stat(self.file).st_ino, inode)
        # A commented-out line is not a user.
        r = passwd("--file", self.file, "--delete", "# end")
        self.assertEqual(r.returncode, 2)
        self.assertEqual(read(self.file), content)
        self.assert_only_users_file()

    def test_delete_from_missing_file(self):
        r = passwd("--file", self.file, "--delete", "alice")
        self.assertEqual(r.returncode, 1)
        self.assertFalse(os.path.exists(self.file))

    def test_bad_user_names(self):
        for name, reason in (("", b"empty"), ("a:b", b"':'"), ("tab\tx", b"control"),
                             ("nl\nx", b"control"), ("#root", b"'#'"), ("x" * 257, b"longer")):
            with self.subTest(name=name):
                r = passwd("--file", self.file, name, stdin=b"pw\n")
                self.assertEqual(r.returncode, 2, r.stderr)
                self.assertIn(reason, r.stderr)
                self.assertFalse(os.path.exists(self.file))
        # The longest allowed name works.
        r = passwd("--file", self.file, "x" * 256, stdin=b"pw\n")
        self.assertEqual(r.returncode, 0, r.stderr)

    def test_bad_passwords(self):
        for stdin, reason in ((b"", b"empty"), (b"\n", b"empty"), (b"\r\n", b"empty"),
                              (b"a\x01b\n", b"control"), (b"a\tb\n", b"control"),
                              (b"x" * 1025 + b"\n", b"longer")):
            with self.subTest(stdin=stdin[:20]):
                r = passwd("--file", self.file, "alice", stdin=stdin)
                self.assertEqual(r.returncode, 2, r.stderr)
                self.assertIn(reason, r.stderr)
                self.assertFalse(os.path.exists(self.file))

    def test_password_line_handling(self):
        for stdin, password in ((b"first\nsecond\n", b"first"), (b"crlf\r\n", b"crlf"),
                                (b"no-newline", b"no-newline"), (b"x" * 1024, b"x" * 1024),
                                (b"p:a:s s\xc3\xa4\n", b"p:a:s s\xc3\xa4")):
            with self.subTest(stdin=stdin[:20]):
                r = passwd("--file", self.file, "alice", stdin=stdin)
                self.assertEqual(r.returncode, 0, r.stderr)
                self.assertTrue(scrypt_matches(self.lines()[0], password))

    def test_existing_mode_and_group_read(self):
        for mode, expected in ((0o600, 0o600), (0o640, 0o640), (0o644, 0o640), (0o666, 0o640),
                               (0o400, 0o600)):
            with self.subTest(mode=oct(mode)):
                write(self.file, (pbkdf2_line("bob", b"b") + "\n").encode(), mode)
                r = passwd("--file", self.file, "alice", stdin=b"pw\n")
                self.assertEqual(r.returncode, 0, r.stderr)
                self.assertEqual(stat.S_IMODE(os.stat(self.file).st_mode), expected)
                if mode & 0o026:
                    self.assertIn(b"no access for others", r.stderr)
                self.assert_only_users_file()

    def test_warns_about_lines_the_daemon_would_refuse(self):
        write(self.file, b"alice:plaintext-oops\nbroken line\n")
        r = passwd("--file", self.file, "bob", stdin=b"pw\n")
        self.assertEqual(r.returncode, 0, r.stderr)
        err = r.stderr.decode()
        self.assertIn("%s:1: " % self.file, err)
        self.assertIn("%s:2: " % self.file, err)
        self.assertIn("the daemon will refuse", err)
        self.assertNotIn("plaintext-oops", err)
        lines = self.lines()
        self.assertEqual(lines[:2], ["alice:plaintext-oops", "broken line"])
        self.assertTrue(scrypt_matches(lines[2], b"pw"))

    def test_symlink_refused(self):
        real = os.path.join(self.tmp.name, "real")
        write(real, (pbkdf2_line("bob", b"b") + "\n").encode())
        os.symlink(real, self.file)
        r = passwd("--file", self.file, "alice", stdin=b"pw\n")
        self.assertEqual(r.returncode, 1)
        self.assertIn(b"symbolic link", r.stderr)
        self.assertTrue(os.path.islink(self.file))
        self.assertEqual(sorted(os.listdir(self.tmp.name)), ["real", "users"])

    def test_missing_directory(self):
        path = os.path.join(self.tmp.name, "no", "such", "users")
        r = passwd("--file", path, "alice", stdin=b"pw\n")
        self.assertEqual(r.returncode, 1)
        self.assertIn(b"cannot create a temporary file", r.stderr)

    def test_relative_path(self):
        r = subprocess.run([BIN, "passwd", "--file", "users", "alice"], input=b"pw\n",
                           capture_output=True, timeout=60, cwd=self.tmp.name)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertTrue(scrypt_matches(self.lines()[0], b"pw"))
        self.assert_only_users_file()


class ProxyAuthDaemonTest(unittest.TestCase):
    """The daemon with `access.users_file`, driven by curl --proxy-user."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="sy-auth-")
        cls.users = os.path.join(cls.tmp.name, "users")
        r = passwd("--file", cls.users, "alice", stdin=b"wonder land\n")
        assert r.returncode == 0, r.stderr
        r = passwd("--file", cls.users, "bob", stdin=b"b:o:b\n")
        assert r.returncode == 0, r.stderr
        cls.origin = Origin()
        cert, key = make_cert(cls.tmp.name)
        cls.tls_origin = Origin(tls_cert=(cert, key))
        cls.daemon = Daemon(config=proxy_config(
            connect_ports=(cls.tls_origin.port,),
            access_extra='  users_file: "%s"\n' % cls.users))
        probe = curl("-o", "/dev/null", "-w", "%{http_code}", cls.origin.url("/plain"),
                     proxy=cls.daemon.proxy_url)
        if probe.stdout != "407":
            # TODO(lead): remove this guard once the connection code calls
            # daemon/proxy_auth.h; from then on a missing 407 is a failure.
            cls.tearDownClass()
            raise unittest.SkipTest("proxy authentication is not wired into the daemon yet")

    @classmethod
    def tearDownClass(cls):
        rc = cls.daemon.stop()
        cls.origin.close()
        cls.tls_origin.close()
        cls.tmp.cleanup()
        if rc != 0:
            raise AssertionError("daemon exit code %d" % rc)

    def curl(self, *args, user=None):
        extra = ["--proxy-user", user] if user is not None else []
        return curl("-i", *extra, *args, proxy=self.daemon.proxy_url)

    def assert_no_credentials_logged(self):
        text = "\n".join(self.daemon.lines)
        for secret in ("wonder land", "wonder", "b:o:b", "Proxy-Authorization", "WRONG",
                       base64.b64encode(b"alice:wonder land").decode(),
                       base64.b64encode(b"bob:b:o:b").decode()):
            self.assertNotIn(secret, text)

    def test_without_credentials_407(self):
        r = self.curl(self.origin.url("/plain?noauth"))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertRegex(r.stdout, r"^HTTP/1\.1 407 ")
        self.assertIn('Proxy-Authenticate: Basic realm="switchyard"', r.stdout)
        rec = self.daemon.wait_for_decision(lambda d: d.get("target", "").endswith("?noauth"))[0]
        self.assertEqual(rec["status"], 407)
        self.assertEqual(rec["user"], "")

    def test_wrong_password_and_unknown_user_407(self):
        for i, user in enumerate(("alice:WRONG", "mallory:wonder land", "alice:", "bob:b:o")):
            with self.subTest(user=user):
                r = self.curl(self.origin.url("/plain?wrong%d" % i), user=user)
                self.assertEqual(r.returncode, 0, r.stderr)
                self.assertRegex(r.stdout, r"^HTTP/1\.1 407 ")
                self.assertIn('Proxy-Authenticate: Basic realm="switchyard"', r.stdout)
                rec = self.daemon.wait_for_decision(
                    lambda d, i=i: d.get("target", "").endswith("?wrong%d" % i))[0]
                self.assertEqual(rec["status"], 407)
        self.assert_no_credentials_logged()

    def test_right_credentials_forward_and_log_the_user(self):
        for i, (user, name) in enumerate((("alice:wonder land", "alice"), ("bob:b:o:b", "bob"))):
            with self.subTest(user=name):
                r = self.curl(self.origin.url("/headers?ok%d" % i), user=user)
                self.assertEqual(r.returncode, 0, r.stderr)
                self.assertRegex(r.stdout, r"^HTTP/1\.1 200 ")
                self.assertNotIn("proxy-authorization", r.stdout.lower())  # origin never sees it
                rec = self.daemon.wait_for_decision(
                    lambda d, i=i: d.get("target", "").endswith("?ok%d" % i))[0]
                self.assertEqual(rec["status"], 200)
                self.assertEqual(rec["user"], name)
        # Again, now answered from the verification cache.
        r = self.curl(self.origin.url("/plain?again"), user="alice:wonder land")
        self.assertRegex(r.stdout, r"^HTTP/1\.1 200 ")
        self.assert_no_credentials_logged()

    def test_connect_needs_credentials_too(self):
        url = self.tls_origin.url("/plain", scheme="https")
        r = curl("-k", "-o", "/dev/null", "-w", "%{http_connect}", url, proxy=self.daemon.proxy_url)
        self.assertEqual(r.stdout, "407")
        r = curl("-k", "-o", "/dev/null", "-w", "%{http_connect} %{http_code}", "--proxy-user",
                 "alice:wonder land", url, proxy=self.daemon.proxy_url)
        self.assertEqual(r.stdout, "200 200", r.stderr)
        rec = self.daemon.wait_for_decision(
            lambda d: d.get("method") == "CONNECT" and d.get("user") == "alice")[0]
        self.assertEqual(rec["port"], self.tls_origin.port)
        self.assert_no_credentials_logged()

    def test_sighup_reloads_the_users_file(self):
        r = passwd("--file", self.users, "carol", stdin=b"carolpw\n")
        self.assertEqual(r.returncode, 0, r.stderr)
        start = self.daemon.log_index()
        self.daemon.send_signal(signal.SIGHUP)
        self.daemon.wait_for_log(r"config reloaded", start=start)
        r = self.curl(self.origin.url("/plain?carol"), user="carol:carolpw")
        self.assertRegex(r.stdout, r"^HTTP/1\.1 200 ")
        rec = self.daemon.wait_for_decision(lambda d: d.get("target", "").endswith("?carol"))[0]
        self.assertEqual(rec["user"], "carol")
        # Deleted and reloaded: the cached success must not outlive the line.
        r = passwd("--file", self.users, "--delete", "carol")
        self.assertEqual(r.returncode, 0, r.stderr)
        start = self.daemon.log_index()
        self.daemon.send_signal(signal.SIGHUP)
        self.daemon.wait_for_log(r"config reloaded", start=start)
        r = self.curl(self.origin.url("/plain?carol-gone"), user="carol:carolpw")
        self.assertRegex(r.stdout, r"^HTTP/1\.1 407 ")


if __name__ == "__main__":
    unittest.main()
