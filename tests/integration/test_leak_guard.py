"""The leak guard (issue 5.6, DESIGN.md): a GOPROXY-protocol request for a
module matching GONOPROXY is sent nowhere — not to a mirror, not to the
original host — and a checksum lookup for a GONOSUMDB module is never
forwarded. The answer is 404 (so the go command's own list goes on), the
decision log says why, and the mirror's access log proves nothing reached it.
Both doors: inside an intercepted tunnel and plain-http absolute-form."""
import tempfile
import unittest

from harness import Daemon, Origin, curl, interception_setup, proxy_config


class LeakGuardTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="sy-leak-")
        cls.ca_dir, cls.ca_crt, cls.mirror_cert = interception_setup(cls.tmp.name)
        cls.mirror = Origin(tls_cert=cls.mirror_cert)
        cls.plain_mirror = Origin()
        config = proxy_config(
            "inherit_env: false\n"
            "env:\n"
            "  GOPRIVATE: \"git.company.com,*.internal\"\n"
            "  GONOSUMDB: \"sums.company.com\"\n"
            "tls: { ca_dir: \"%s\", upstream_ca_file: \"%s\" }\n"
            "resolve: { mirror.test: \"127.0.0.1\" }\n"
            "rules:\n"
            "  - name: goproxy\n"
            "    match: { hosts: \"proxy.golang.org,sum.golang.org\" }\n"
            "    action: mirror\n"
            "    mirrors: \"https://mirror.test:%d,direct\"\n"
            "    intercept: true\n"
            "  - name: plain-goproxy\n"
            "    match: { hosts: \"goproxy.plain.test\" }\n"
            "    action: mirror\n"
            "    mirrors: \"http://127.0.0.1:%d/base/|direct\"\n"
            "    intercept: true\n"
            "  - name: nothing-else\n"
            "    match: { hosts: \"*\" }\n"
            "    action: deny\n"
            % (cls.ca_dir, cls.mirror_cert[0], cls.mirror.port, cls.plain_mirror.port))
        cls.d = Daemon(config=config)

    @classmethod
    def tearDownClass(cls):
        cls.d.stop()
        cls.mirror.close()
        cls.plain_mirror.close()
        cls.tmp.cleanup()

    def get(self, url):
        return curl("-s", "-i", "--suppress-connect-headers", "--cacert", self.ca_crt, url, proxy=self.d.proxy_url)

    def decision_for(self, url_suffix):
        return self.d.wait_for_decision(
            lambda r: r.get("method") == "GET" and r.get("target", "").endswith(url_suffix))[0]

    def test_guarded_requests_reach_no_one(self):
        # (url, module logged, guard variable named in the body)
        cases = [
            ("https://proxy.golang.org/git.company.com/secret/@v/list",
             "git.company.com/secret", "GONOPROXY"),
            ("https://proxy.golang.org/git.company.com/secret/@v/v1.0.0.zip",
             "git.company.com/secret", "GONOPROXY"),
            ("https://proxy.golang.org/git.company.com/secret/@latest",
             "git.company.com/secret", "GONOPROXY"),
            ("https://proxy.golang.org/db.internal/x/@v/v0.1.0.info", "db.internal/x", "GONOPROXY"),
            ("https://proxy.golang.org/git.company.com/%21upper/@v/v1.0.0.mod",
             "git.company.com/Upper", "GONOPROXY"),
            ("https://sum.golang.org/lookup/sums.company.com/m@v1.0.0", "sums.company.com/m",
             "GONOSUMDB"),
            ("https://proxy.golang.org/sumdb/sum.golang.org/lookup/sums.company.com/m@v1.0.0",
             "sums.company.com/m", "GONOSUMDB"),
            ("http://goproxy.plain.test/git.company.com/secret/@v/list", "git.company.com/secret",
             "GONOPROXY"),
            ("http://goproxy.plain.test/prefix/db.internal/y/@v/list", "db.internal/y",
             "GONOPROXY"),
        ]
        for url, module, variable in cases:
            with self.subTest(url=url):
                r = self.get(url)
                self.assertEqual(r.returncode, 0, r.stderr)
                self.assertTrue(r.stdout.startswith("HTTP/1.1 404 Private module, not fetched"),
                                r.stdout[:200])
                self.assertIn(variable + " pattern", r.stdout)
                line = self.decision_for(url.split("/", 3)[3])
                self.assertEqual(line["status"], 404)
                self.assertEqual(line["module"], module)
                self.assertEqual(line["attempts"], [])
                self.assertIn("http_request_denied", line["proxy_status"])
        self.assertEqual(self.mirror.requests, [])
        self.assertEqual(self.plain_mirror.requests, [])

    def test_public_modules_still_go_to_the_mirror(self):
        # GONOPROXY does not cover sumdb lookups of private modules whose
        # GONOSUMDB is set differently; public modules pass as usual.
        before = len(self.mirror.requests)
        cases = [
            "https://proxy.golang.org/github.com/public/x/@v/list",
            "https://proxy.golang.org/git.company.com.evil/x/@v/list",
            "https://sum.golang.org/lookup/git.company.com/y@v1.0.0",
        ]
        for url in cases:
            with self.subTest(url=url):
                r = self.get(url)
                self.assertEqual(r.returncode, 0, r.stderr)
                self.assertIn("HTTP/1.1 200", r.stdout.splitlines()[0])
        paths = [q["path"] for q in self.mirror.requests[before:]]
        self.assertEqual(paths, ["/github.com/public/x/@v/list",
                                 "/git.company.com.evil/x/@v/list",
                                 "/lookup/git.company.com/y@v1.0.0"])


if __name__ == "__main__":
    unittest.main()
