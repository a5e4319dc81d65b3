"""`switchyard cache ls|verify|purge`: the real binary on a cache directory.

The entries are written here, following the documented file format (body,
JSON trailer, "SWYCACHE" + the trailer length as 8 little-endian bytes), so
the test also pins that format: a file the daemon would write and a file
written by this small writer must be the same thing to the CLI.

Patterns are GOPRIVATE syntax matched against the unescaped module path of
each key: "github.com/Azure" finds "mod/github.com/!azure/...".
"""
import hashlib
import io
import json
import os
import struct
import subprocess
import tempfile
import unittest
import zipfile

from harness import BIN

STORED_AT_MS = 1_700_000_000_000  # 2023-11-14T22:13:20Z


def run_cache(*args):
    if not BIN:
        raise RuntimeError("SWITCHYARD_BIN is not set (run through ctest)")
    return subprocess.run([BIN, "cache", *args], capture_output=True, text=True, timeout=60)


def entry_bytes(key, body, immutable=True, stored_at_ms=STORED_AT_MS,
                content_type="text/plain; charset=utf-8", source=""):
    trailer = json.dumps({
        "format": 1, "key": key, "size": len(body),
        "sha256": hashlib.sha256(body).hexdigest(), "stored_at_ms": stored_at_ms,
        "immutable": immutable, "content_type": content_type, "source": source,
    }).encode()
    return body + trailer + b"SWYCACHE" + struct.pack("<Q", len(trailer))


def write_entry(cache_dir, key, body, **meta):
    path = os.path.join(cache_dir, "data", key)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(entry_bytes(key, body, **meta))
    return path


def module_zip(prefix):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr(prefix + "/go.mod", "module x\n")
        z.writestr(prefix + "/x.go", "package x\n")
    return buf.getvalue()


# key -> (body, immutable)
ENTRIES = {
    "mod/github.com/!azure/azure-sdk/@v/list": (b"v1.0.0\nv1.1.0\n", False),
    "mod/github.com/!azure/azure-sdk/@v/v1.0.0.mod": (b"module github.com/Azure/azure-sdk\n", True),
    "mod/github.com/!azure/azure-sdk/@v/v1.0.0.zip":
        (module_zip("github.com/!azure/azure-sdk@v1.0.0"), True),
    "mod/github.com/azurefan/tool/@latest": (b'{"Version":"v0.1.0"}', False),
    "mod/golang.org/x/mod/@v/v0.14.0.info": (b'{"Version":"v0.14.0"}', True),
    "mod/git.corp.example/team/lib/@v/v2.0.0+incompatible.mod": (b"module git.corp.example/team/lib\n", True),
    "sumdb/sum.golang.org/lookup/golang.org/x/mod@v0.14.0": (b"1234\ngolang.org/x/mod v0.14.0 h1:x\n", True),
    "sumdb/sum.golang.org/tile/8/0/001": (bytes(range(256)) * 4, True),
    "sumdb/sum.golang.org/latest": (b"go.sum database tree\n", False),
}


class CacheCliTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="sy-cache-")
        self.addCleanup(self.tmp.cleanup)
        self.dir = self.make_cache("cache")

    def make_cache(self, name):
        """A cache directory holding ENTRIES."""
        cache_dir = os.path.join(self.tmp.name, name)
        os.makedirs(os.path.join(cache_dir, "data"))
        os.makedirs(os.path.join(cache_dir, "tmp"))
        for key, (body, immutable) in ENTRIES.items():
            write_entry(cache_dir, key, body, immutable=immutable)
        return cache_dir

    def path(self, key):
        return os.path.join(self.dir, "data", key)

    def keys_listed(self, *pattern):
        r = run_cache("ls", "--dir", self.dir, *pattern)
        self.assertEqual(r.returncode, 0, r.stderr)
        return [line.split(" ")[0] for line in r.stdout.splitlines()[:-1]]

    def test_ls_lists_every_entry_sorted_with_summary(self):
        r = run_cache("ls", "--dir", self.dir)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stderr, "")
        expected = []
        total = 0
        for key in sorted(ENTRIES):
            body, immutable = ENTRIES[key]
            expected.append("%s %d 2023-11-14T22:13:20Z %s %s" % (
                key, len(body), "immutable" if immutable else "mutable",
                hashlib.sha256(body).hexdigest()[:12]))
            total += len(body)
        expected.append("%d entries, %d bytes" % (len(ENTRIES), total))
        self.assertEqual(r.stdout.splitlines(), expected)

    def test_ls_pattern_table(self):
        azure = ["mod/github.com/!azure/azure-sdk/@v/list",
                 "mod/github.com/!azure/azure-sdk/@v/v1.0.0.mod",
                 "mod/github.com/!azure/azure-sdk/@v/v1.0.0.zip"]
        x_mod = ["mod/golang.org/x/mod/@v/v0.14.0.info",
                 "sumdb/sum.golang.org/lookup/golang.org/x/mod@v0.14.0"]
        corp = ["mod/git.corp.example/team/lib/@v/v2.0.0+incompatible.mod"]
        cases = [
            ("github.com/Azure", azure),
            ("github.com/Azure/", azure),
            ("github.com/Azure/azure-sdk", azure),
            ("github.com/azure", []),  # case-sensitive, like Go
            ("github.com/Az*", azure),
            ("github.com/*", sorted(azure + ["mod/github.com/azurefan/tool/@latest"])),
            ("github.com/azurefan", ["mod/github.com/azurefan/tool/@latest"]),
            ("golang.org/x", x_mod),
            ("golang.org/x/*", x_mod),
            ("*.corp.example", corp),
            ("github.com/Azure,*.corp.example", sorted(azure + corp)),
            (",github.com/Azure,", azure),
            ("sum.golang.org", []),  # tiles, latest: about no module
            ("example.com", []),
        ]
        for pattern, want in cases:
            with self.subTest(pattern=pattern):
                self.assertEqual(self.keys_listed(pattern), sorted(want))

    def test_ls_from_config_and_usage_errors(self):
        cfg = os.path.join(self.tmp.name, "switchyard.yaml")
        with open(cfg, "w") as f:
            f.write('cache: { dir: "%s", max_size: "1GiB" }\n' % self.dir)
        r = run_cache("ls", "--config", cfg, "golang.org/x/mod")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout.splitlines()[-1], "2 entries, %d bytes" % (
            len(ENTRIES["mod/golang.org/x/mod/@v/v0.14.0.info"][0]) +
            len(ENTRIES["sumdb/sum.golang.org/lookup/golang.org/x/mod@v0.14.0"][0])))
        # --dir wins over the config.
        other = os.path.join(self.tmp.name, "other")
        os.makedirs(os.path.join(other, "data"))
        r = run_cache("ls", "--config", cfg, "--dir", other)
        self.assertEqual((r.returncode, r.stdout), (0, "0 entries, 0 bytes\n"))

        no_cache = os.path.join(self.tmp.name, "nocache.yaml")
        with open(no_cache, "w") as f:
            f.write('listen: ["127.0.0.1:0"]\n')
        bad = os.path.join(self.tmp.name, "bad.yaml")
        with open(bad, "w") as f:
            f.write("cache: { dir: 7, colour: blue }\n")
        cases = [
            (["ls"], 2, "give --dir DIR or --config FILE"),
            (["verify", "--config", no_cache], 2, "sets no cache.dir"),
            (["purge", "--config", no_cache, "x.com"], 2, "sets no cache.dir"),
            (["ls", "--config", bad], 1, "bad.yaml:1:"),
            (["ls", "--config", os.path.join(self.tmp.name, "absent.yaml")], 1, "absent.yaml"),
            (["ls", "--dir", os.path.join(self.tmp.name, "absent")], 1, "No such file or directory"),
            (["ls", "--dir", self.dir, "github.com/[x"], 2, "github.com/[x"),
            (["purge", "--dir", self.dir, ""], 2, "give a module pattern"),
        ]
        for args, code, message in cases:
            with self.subTest(args=args):
                r = run_cache(*args)
                self.assertEqual(r.returncode, code, r.stderr)
                self.assertIn(message, r.stderr)
        # purge without a pattern is refused by the parser, before anything runs.
        r = run_cache("purge", "--dir", self.dir)
        self.assertNotEqual(r.returncode, 0)
        self.assertEqual(len(self.keys_listed()), len(ENTRIES))

    def test_verify_sound_cache(self):
        r = run_cache("verify", "--dir", self.dir)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertEqual(r.stdout, "%d entries checked, 0 broken\n" % len(ENTRIES))

    def test_verify_removes_broken_entries(self):
        # A flipped byte in a body, a zip whose end record is damaged (and
        # whose trailer was rewritten to match, so only the zip check can
        # tell), a truncated file, a trailer that is not JSON, a file under
        # the name of another key, and a stray file in a fresh directory.
        mod = "mod/github.com/!azure/azure-sdk/@v/v1.0.0.mod"
        with open(self.path(mod), "r+b") as f:
            f.seek(3)
            b = f.read(1)
            f.seek(3)
            f.write(bytes([b[0] ^ 0x20]))
        zkey = "mod/github.com/!azure/azure-sdk/@v/v1.0.0.zip"
        zbody = bytearray(ENTRIES[zkey][0])
        zbody[-22] ^= 0xff
        write_entry(self.dir, zkey, bytes(zbody))
        tile = "sumdb/sum.golang.org/tile/8/0/001"
        with open(self.path(tile), "r+b") as f:
            f.truncate(os.path.getsize(self.path(tile)) - 5)
        latest = "sumdb/sum.golang.org/latest"
        with open(self.path(latest), "wb") as f:
            f.write(b"tree" + b"{oops" + b"SWYCACHE" + struct.pack("<Q", 5))
        moved = "mod/golang.org/x/mod/@v/v0.15.0.info"
        os.makedirs(os.path.dirname(self.path(moved)), exist_ok=True)
        with open(self.path(moved), "wb") as f:
            f.write(entry_bytes("mod/golang.org/x/mod/@v/v0.14.0.info", b"{}"))
        stray = "mod/stray.example/@v/list"
        os.makedirs(os.path.dirname(self.path(stray)))
        with open(self.path(stray), "wb") as f:
            f.write(b"not an entry")

        r = run_cache("verify", "--dir", self.dir)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        lines = r.stdout.splitlines()
        self.assertEqual(lines[:-1], [
            "removed " + mod + ": sha256 mismatch",
            "removed " + zkey + ": not a zip file: no end-of-central-directory record",
            "removed " + moved + ': trailer key "mod/golang.org/x/mod/@v/v0.14.0.info" != file name',
            "removed " + stray + ": no trailer (file of 12 bytes)",
            "removed " + latest + ": trailer is not a JSON object",
            "removed " + tile + ": no trailer footer",
        ])
        self.assertEqual(lines[-1], "%d entries checked, 6 broken" % (len(ENTRIES) + 1 + 1))
        for key in (mod, zkey, tile, latest, moved, stray):
            self.assertFalse(os.path.exists(self.path(key)), key)
        # The emptied directory of the stray file is gone too.
        self.assertFalse(os.path.exists(os.path.join(self.dir, "data", "mod", "stray.example")))
        left = sorted(set(ENTRIES) - {mod, zkey, tile, latest})
        self.assertEqual(self.keys_listed(), left)
        r = run_cache("verify", "--dir", self.dir)
        self.assertEqual((r.returncode, r.stdout), (0, "%d entries checked, 0 broken\n" % len(left)))

    def test_ls_reports_broken_files_without_removing_them(self):
        latest = "sumdb/sum.golang.org/latest"
        with open(self.path(latest), "wb") as f:
            f.write(b"junk")
        r = run_cache("ls", "--dir", self.dir)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertNotIn(latest, r.stdout)
        self.assertIn("broken: %s: no trailer (file of 4 bytes)" % latest, r.stderr)
        self.assertTrue(os.path.exists(self.path(latest)))

    def test_verify_with_pattern_checks_only_those_modules(self):
        info = "mod/golang.org/x/mod/@v/v0.14.0.info"
        with open(self.path(info), "r+b") as f:
            f.write(b"[")
        r = run_cache("verify", "--dir", self.dir, "github.com/Azure")
        self.assertEqual((r.returncode, r.stdout), (0, "3 entries checked, 0 broken\n"))
        self.assertTrue(os.path.exists(self.path(info)))
        r = run_cache("verify", "--dir", self.dir, "golang.org/x/mod")
        self.assertEqual(r.returncode, 1)
        self.assertEqual(r.stdout, "removed %s: sha256 mismatch\n2 entries checked, 1 broken\n" % info)

    def test_purge_table(self):
        def size(*keys):
            return sum(len(ENTRIES[k][0]) for k in keys)
        azure = [k for k in ENTRIES if k.startswith("mod/github.com/!azure/")]
        cases = [
            ("example.com", [], 0),
            ("github.com/azure", [], 0),
            ("github.com/Azure", azure, size(*azure)),
            ("golang.org/x/mod,*.corp.example",
             ["mod/golang.org/x/mod/@v/v0.14.0.info",
              "sumdb/sum.golang.org/lookup/golang.org/x/mod@v0.14.0",
              "mod/git.corp.example/team/lib/@v/v2.0.0+incompatible.mod"],
             size("mod/golang.org/x/mod/@v/v0.14.0.info",
                  "sumdb/sum.golang.org/lookup/golang.org/x/mod@v0.14.0",
                  "mod/git.corp.example/team/lib/@v/v2.0.0+incompatible.mod")),
            ("*", [k for k in ENTRIES if k.startswith("mod/") or "/lookup/" in k],
             size(*[k for k in ENTRIES if k.startswith("mod/") or "/lookup/" in k])),
        ]
        for i, (pattern, gone, freed) in enumerate(cases):
            with self.subTest(pattern=pattern):
                cache_dir = self.make_cache("purge%d" % i)
                r = run_cache("purge", "--dir", cache_dir, pattern)
                self.assertEqual(r.returncode, 0, r.stderr)
                self.assertEqual(r.stdout, "purged %d entries, %d bytes\n" % (len(gone), freed))
                r = run_cache("ls", "--dir", cache_dir)
                self.assertEqual([line.split(" ")[0] for line in r.stdout.splitlines()[:-1]],
                                 sorted(set(ENTRIES) - set(gone)))
        # Purging the last entries of a module leaves no empty directories.
        run_cache("purge", "--dir", self.dir, "github.com/Azure")
        github = os.path.join(self.dir, "data", "mod", "github.com")
        self.assertEqual(os.listdir(github), ["azurefan"])

    def test_cli_leaves_tmp_alone(self):
        # A daemon may be writing there: the CLI must not empty tmp/.
        partial = os.path.join(self.dir, "tmp", "4242-0-00aa")
        with open(partial, "wb") as f:
            f.write(b"half an entry")
        for args in (["ls"], ["verify"], ["purge", "*"]):
            run_cache(*args, "--dir", self.dir)
        self.assertTrue(os.path.exists(partial))


if __name__ == "__main__":
    unittest.main()
