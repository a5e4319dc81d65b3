"""The systemd side of a gateway install: `cmake --install` into a DESTDIR,
then systemd's own tools judge what landed there.

The machine that runs the tests has no running systemd, so everything here is
offline: `systemd-analyze verify` and `systemd-analyze security --offline=yes`
with `--root=DESTDIR` (so ExecStart= names a binary that exists inside the
root), `systemd-sysusers --root` and `systemd-tmpfiles --root`. The root also
gets a copy of the host's own units (sysinit.target, network-online.target…)
in its /run/systemd/system: verify resolves the default dependencies and
fails on a root that lacks them.
"""
import os
import re
import shutil
import stat
import subprocess
import tempfile
import unittest

BUILD_DIR = os.environ.get("SY_BUILD_DIR", "")
HOST_UNITS = "/usr/lib/systemd/system"
UNIT_DIR = "usr/lib/systemd/system"
# The bar for `systemd-analyze security`: 0 is best, 10 worst.
MAX_EXPOSURE = 2.0


def run(cmd, env=None, timeout=300):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)


def cmake_command():
    """The cmake that configured the build tree (CMAKE_COMMAND in its cache)."""
    with open(os.path.join(BUILD_DIR, "CMakeCache.txt")) as f:
        for line in f:
            if line.startswith("CMAKE_COMMAND:"):
                return line.split("=", 1)[1].strip()
    return shutil.which("cmake") or "cmake"


def install(destdir, prefix="/usr"):
    """`DESTDIR=destdir cmake --install BUILD_DIR --prefix prefix`, plus the
    host's units as /run/systemd/system inside it (never a switchyard one)."""
    env = dict(os.environ, DESTDIR=destdir)
    out = run([cmake_command(), "--install", BUILD_DIR, "--prefix", prefix], env=env)
    assert out.returncode == 0, "cmake --install failed:\n%s\n%s" % (out.stdout, out.stderr)
    runtime_units = os.path.join(destdir, "run/systemd/system")
    os.makedirs(runtime_units, exist_ok=True)
    for name in os.listdir(HOST_UNITS):
        if name.startswith("switchyard"):
            continue
        src = os.path.join(HOST_UNITS, name)
        dst = os.path.join(runtime_units, name)
        if os.path.islink(src):
            os.symlink(os.readlink(src), dst)
        elif os.path.isfile(src):
            shutil.copy(src, dst)
    return out


def parse_unit(path):
    """{section: [(key, value), …]}, keeping repeated keys in order."""
    sections = {}
    current = None
    with open(path) as f:
        for raw in f:
            line = raw.strip()
            if not line or line[0] in "#;":
                continue
            if line.startswith("[") and line.endswith("]"):
                current = sections.setdefault(line[1:-1], [])
                continue
            key, _, value = line.partition("=")
            current.append((key.strip(), value.strip()))
    return sections


def values(unit, section, key):
    return [v for k, v in unit.get(section, []) if k == key]


def analyze(*args):
    return run(["systemd-analyze", "--no-pager", *args], timeout=120)


def exposure(destdir, unit_path):
    """The overall exposure of `systemd-analyze security` and its output."""
    out = analyze("security", "--offline=yes", "--root=" + destdir, unit_path)
    m = re.search(r"Overall exposure level for switchyard\.service: (\d+\.\d+)", out.stdout)
    assert m, "no overall exposure in:\n%s\n%s" % (out.stdout, out.stderr)
    return float(m.group(1)), out.stdout


class SystemdUnitsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if not BUILD_DIR:
            raise unittest.SkipTest("SY_BUILD_DIR is not set (run through ctest)")
        if shutil.which("systemd-analyze") is None:
            raise AssertionError("systemd-analyze not found: apt-get install systemd")
        cls.tmp = tempfile.TemporaryDirectory(prefix="sy-units-")
        cls.dest = os.path.join(cls.tmp.name, "dest")
        cls.install_output = install(cls.dest)
        # Before any test adds to the root (/run above, /var from tmpfiles).
        cls.installed_top = sorted(os.listdir(cls.dest))
        cls.service_path = os.path.join(cls.dest, UNIT_DIR, "switchyard.service")
        cls.socket_path = os.path.join(cls.dest, UNIT_DIR, "switchyard.socket")
        cls.service = parse_unit(cls.service_path)
        cls.socket = parse_unit(cls.socket_path)

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def path(self, relative):
        return os.path.join(self.dest, relative)

    # -- what lands where ------------------------------------------------

    def test_install_layout(self):
        expected = {
            "usr/bin/switchyard": 0o755,
            UNIT_DIR + "/switchyard.service": 0o644,
            UNIT_DIR + "/switchyard.socket": 0o644,
            "usr/lib/sysusers.d/switchyard.conf": 0o644,
            "usr/lib/tmpfiles.d/switchyard.conf": 0o644,
            "etc/switchyard/switchyard.yaml": 0o644,
            "usr/share/switchyard/switchyard.yaml": 0o644,
            "usr/share/switchyard/privileged-port.conf": 0o644,
            "usr/share/doc/switchyard/OPERATIONS.md": 0o644,
        }
        for relative, mode in expected.items():
            with self.subTest(relative):
                st = os.stat(self.path(relative))
                self.assertTrue(stat.S_ISREG(st.st_mode))
                self.assertEqual(stat.S_IMODE(st.st_mode), mode)
        # Nothing is installed outside the prefix and sysconfdir.
        self.assertEqual(self.installed_top, ["etc", "run", "usr"])

    def test_installed_text_names_no_destdir_and_no_placeholder(self):
        for relative in (UNIT_DIR + "/switchyard.service", UNIT_DIR + "/switchyard.socket",
                         "usr/share/switchyard/privileged-port.conf"):
            with self.subTest(relative):
                with open(self.path(relative)) as f:
                    text = f.read()
                self.assertNotIn(self.dest, text)
                self.assertNotIn(self.tmp.name, text)
                self.assertIsNone(re.search(r"@[A-Z_]+@", text))

    def test_service_settings(self):
        service = [
            ("Type", ["notify"]),
            ("NotifyAccess", ["main"]),
            ("ExecStart", ["/usr/bin/switchyard run --config /etc/switchyard/switchyard.yaml"]),
            ("ExecReload", ["/usr/bin/switchyard check --config /etc/switchyard/switchyard.yaml",
                            "kill -HUP $MAINPID"]),
            ("WatchdogSec", ["30s"]),
            ("User", ["switchyard"]),
            ("Group", ["switchyard"]),
            ("StateDirectory", ["switchyard"]),
            ("CacheDirectory", ["switchyard"]),
            ("LogsDirectory", ["switchyard"]),
            ("ConfigurationDirectory", ["switchyard"]),
            ("LimitNOFILE", ["65536"]),
            ("CapabilityBoundingSet", [""]),
            ("AmbientCapabilities", [""]),
            ("NoNewPrivileges", ["yes"]),
            ("ProtectSystem", ["strict"]),
            ("ProtectHome", ["yes"]),
            ("PrivateTmp", ["yes"]),
            ("PrivateDevices", ["yes"]),
            ("RestrictAddressFamilies", ["AF_INET AF_INET6 AF_UNIX"]),
            ("SystemCallFilter", ["@system-service", "~@privileged @resources"]),
            ("MemoryDenyWriteExecute", ["yes"]),
            ("LockPersonality", ["yes"]),
            ("RestrictNamespaces", ["yes"]),
            ("ProtectKernelTunables", ["yes"]),
            ("ProtectKernelModules", ["yes"]),
            ("ProtectKernelLogs", ["yes"]),
            ("ProtectControlGroups", ["yes"]),
            ("DynamicUser", []),
        ]
        for key, expected in service:
            with self.subTest(key):
                self.assertEqual(values(self.service, "Service", key), expected)
        # The drain (limits.drain_timeout, 30 s by default) must fit in the
        # stop timeout, or systemd kills connections that were finishing.
        self.assertEqual(values(self.service, "Service", "TimeoutStopSec"), ["45s"])
        self.assertEqual(values(self.service, "Install", "WantedBy"), ["multi-user.target"])
        # Ports below 1024 are the drop-in's business, never the main unit's.
        for key, value in self.service["Service"]:
            self.assertNotIn("CAP_", value, key)

    def test_socket_settings(self):
        socket_unit = [
            ("ListenStream", ["3128"]),
            ("FileDescriptorName", ["proxy"]),
            ("Service", ["switchyard.service"]),
            ("Accept", []),
        ]
        for key, expected in socket_unit:
            with self.subTest(key):
                self.assertEqual(values(self.socket, "Socket", key), expected)
        self.assertEqual(values(self.socket, "Install", "WantedBy"), ["sockets.target"])

    # -- systemd-analyze -------------------------------------------------

    def assert_verify_clean(self, root, unit_path):
        out = analyze("verify", "--root=" + root, unit_path)
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
        # Unknown keys and bad values are only warnings (exit 0): any output
        # at all is a finding.
        self.assertEqual(out.stdout + out.stderr, "")

    def test_verify_service(self):
        self.assert_verify_clean(self.dest, self.service_path)

    def test_verify_socket(self):
        self.assert_verify_clean(self.dest, self.socket_path)

    def test_verify_by_unit_name(self):
        self.assert_verify_clean(self.dest, "switchyard.service")
        self.assert_verify_clean(self.dest, "switchyard.socket")

    def test_verify_would_catch_mistakes(self):
        """The checks above are worth something only if verify complains
        about a broken copy of the same unit in the same root."""
        with open(self.service_path) as f:
            text = f.read()
        cases = [
            ("misspelt key", text.replace("NoNewPrivileges=yes", "NoNewPrivilegs=yes"),
             r"Unknown key 'NoNewPrivilegs'"),
            ("missing binary", text.replace("/usr/bin/switchyard run", "/usr/bin/switchyardx run"),
             r"/usr/bin/switchyardx is not executable"),
            ("bad value", text.replace("ProtectSystem=strict", "ProtectSystem=very"),
             r"Failed to parse protect system value, ignoring: very"),
        ]
        etc = os.path.join(self.dest, "etc/systemd/system")
        os.makedirs(etc, exist_ok=True)
        for name, broken, pattern in cases:
            with self.subTest(name):
                unit = os.path.join(etc, "sy-broken.service")
                with open(unit, "w") as f:
                    f.write(broken)
                try:
                    out = analyze("verify", "--root=" + self.dest, unit)
                finally:
                    os.unlink(unit)
                self.assertRegex(out.stdout + out.stderr, pattern)

    def test_security_exposure(self):
        score, output = exposure(self.dest, self.service_path)
        self.assertLessEqual(score, MAX_EXPOSURE, output)
        # --threshold is in tenths: the same bar, checked by systemd itself.
        out = analyze("security", "--offline=yes", "--threshold=%d" % round(MAX_EXPOSURE * 10),
                      "--root=" + self.dest, self.service_path)
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
        # The unit by name, found in the root's unit path, scores the same.
        by_name = analyze("security", "--offline=yes", "--root=" + self.dest, "switchyard.service")
        self.assertIn("switchyard.service: %.1f" % score, by_name.stdout)
        # What is left open is what a forward proxy cannot do without.
        open_items = re.findall(r"^✗ (\S+)", output, re.M)
        self.assertLessEqual(set(open_items), {
            "RootDirectory=/RootImage=", "RestrictAddressFamilies=~AF_UNIX",
            "RestrictAddressFamilies=~AF_(INET|INET6)", "PrivateNetwork=", "DeviceAllow=",
            "IPAddressDeny="}, output)

    def test_privileged_port_dropin(self):
        base, _ = exposure(self.dest, self.service_path)
        dropin_dir = os.path.join(self.dest, "etc/systemd/system/switchyard.service.d")
        os.makedirs(dropin_dir, exist_ok=True)
        dropin = os.path.join(dropin_dir, "privileged-port.conf")
        shutil.copy(self.path("usr/share/switchyard/privileged-port.conf"), dropin)
        self.addCleanup(os.unlink, dropin)
        parsed = parse_unit(dropin)
        self.assertEqual(values(parsed, "Service", "CapabilityBoundingSet"),
                         ["CAP_NET_BIND_SERVICE"])
        self.assertEqual(values(parsed, "Service", "AmbientCapabilities"),
                         ["CAP_NET_BIND_SERVICE"])
        self.assert_verify_clean(self.dest, self.service_path)
        score, output = exposure(self.dest, self.service_path)
        self.assertLessEqual(score, MAX_EXPOSURE, output)
        self.assertGreater(score, base)
        # The drop-in is really applied: the capability shows up.
        self.assertRegex(output, r"✗ CapabilityBoundingSet=~CAP_NET_\(BIND_SERVICE")
        self.assertRegex(output, r"✗ AmbientCapabilities=")
        # …and nothing beyond it: every other capability stays dropped.
        self.assertRegex(output, r"✓ CapabilityBoundingSet=~CAP_SYS_ADMIN")
        self.assertRegex(output, r"✓ CapabilityBoundingSet=~CAP_NET_ADMIN")

    # -- users, directories, config ----------------------------------------

    def test_sysusers_and_tmpfiles(self):
        out = run(["systemd-sysusers", "--root=" + self.dest])
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
        with open(self.path("etc/passwd")) as f:
            entry = [line.split(":") for line in f if line.startswith("switchyard:")]
        self.assertEqual(len(entry), 1)
        uid, gid, home, shell = int(entry[0][2]), int(entry[0][3]), entry[0][5], entry[0][6]
        self.assertEqual(home, "/var/lib/switchyard")
        self.assertEqual(shell.strip(), "/usr/sbin/nologin")
        self.assertLess(uid, 1000)  # a system account
        if os.geteuid() != 0:
            self.skipTest("systemd-tmpfiles --create needs root to chown")
        out = run(["systemd-tmpfiles", "--root=" + self.dest, "--create"])
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
        # Same modes as the unit's *DirectoryMode=, so the two never fight.
        for relative, mode in [("var/lib/switchyard", 0o750), ("var/lib/switchyard/ca", 0o700),
                               ("var/cache/switchyard", 0o750), ("var/log/switchyard", 0o750)]:
            with self.subTest(relative):
                st = os.stat(self.path(relative))
                self.assertTrue(stat.S_ISDIR(st.st_mode))
                self.assertEqual(stat.S_IMODE(st.st_mode), mode)
                self.assertEqual((st.st_uid, st.st_gid), (uid, gid))
        modes = dict(self.service["Service"])
        self.assertEqual(modes["StateDirectoryMode"], "0750")
        self.assertEqual(modes["CacheDirectoryMode"], "0750")
        self.assertEqual(modes["LogsDirectoryMode"], "0750")

    def test_example_config_is_valid(self):
        binary = self.path("usr/bin/switchyard")
        config = self.path("etc/switchyard/switchyard.yaml")
        out = run([binary, "check", "--config", config], timeout=60)
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
        # The commented-out intercept rule is valid too once uncommented.
        with open(config) as f:
            text = f.read()
        uncommented = re.sub(r"^  # (- name: golang-intercepted)", r"  \1", text, flags=re.M)
        uncommented = re.sub(r"^  #   ", "    ", uncommented, flags=re.M)
        self.assertNotEqual(uncommented, text)
        variant = os.path.join(self.tmp.name, "intercept.yaml")
        with open(variant, "w") as f:
            f.write(uncommented)
        out = run([binary, "check", "--config", variant], timeout=60)
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
        self.assertIn("3 rules", out.stdout + out.stderr)

    def test_example_config_matches_the_unit(self):
        """The paths the config writes to are the ones the sandbox opens."""
        with open(self.path("etc/switchyard/switchyard.yaml")) as f:
            text = f.read()
        expected = [
            r'^listen: \["0\.0\.0\.0:3128"\]$',
            r'^admin: "127\.0\.0\.1:3129"$',
            r'deny_private_destinations: true',
            r'allow_clients: \[.*"10\.0\.0\.0/8", "172\.16\.0\.0/12", "192\.168\.0\.0/16"',
            r'ca_dir: "/var/lib/switchyard/ca"',            # StateDirectory=
            r'cache: \{ dir: "/var/cache/switchyard"',      # CacheDirectory=
            r'decisions: "/var/log/switchyard/decisions\.log"',  # LogsDirectory=
        ]
        for pattern in expected:
            with self.subTest(pattern):
                self.assertRegex(text, re.compile(pattern, re.M))
        with open(self.path("usr/share/switchyard/switchyard.yaml")) as f:
            self.assertEqual(f.read(), text)


class InstallPrefixTest(unittest.TestCase):
    """Other prefixes, and a reinstall over an operator's config."""

    def setUp(self):
        if not BUILD_DIR:
            self.skipTest("SY_BUILD_DIR is not set (run through ctest)")
        self.tmp = tempfile.TemporaryDirectory(prefix="sy-units-")
        self.addCleanup(self.tmp.cleanup)
        self.dest = os.path.join(self.tmp.name, "dest")

    def test_usr_local_prefix(self):
        # `make install` uses the default prefix, /usr/local: systemd looks
        # for units in /usr/local/lib/systemd/system too.
        install(self.dest, prefix="/usr/local")
        unit_path = os.path.join(self.dest, "usr/local/lib/systemd/system/switchyard.service")
        unit = parse_unit(unit_path)
        self.assertEqual(
            values(unit, "Service", "ExecStart"),
            ["/usr/local/bin/switchyard run --config /usr/local/etc/switchyard/switchyard.yaml"])
        for relative in ("usr/local/bin/switchyard",
                         "usr/local/etc/switchyard/switchyard.yaml",
                         "usr/local/lib/sysusers.d/switchyard.conf",
                         "usr/local/lib/tmpfiles.d/switchyard.conf",
                         "usr/local/lib/systemd/system/switchyard.socket",
                         "usr/local/share/switchyard/privileged-port.conf"):
            with self.subTest(relative):
                self.assertTrue(os.path.isfile(os.path.join(self.dest, relative)))
        out = analyze("verify", "--root=" + self.dest, unit_path)
        self.assertEqual((out.returncode, out.stdout + out.stderr), (0, ""))

    def test_existing_config_is_kept(self):
        config = os.path.join(self.dest, "etc/switchyard/switchyard.yaml")
        os.makedirs(os.path.dirname(config))
        mine = 'listen: ["0.0.0.0:8080"]  # the operator\'s own\n'
        with open(config, "w") as f:
            f.write(mine)
        out = install(self.dest)
        with open(config) as f:
            self.assertEqual(f.read(), mine)
        self.assertIn("Keeping: " + config, out.stdout)
        # The pristine example is still there to compare with.
        self.assertTrue(os.path.isfile(
            os.path.join(self.dest, "usr/share/switchyard/switchyard.yaml")))


if __name__ == "__main__":
    unittest.main()
