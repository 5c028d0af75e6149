"""The command line: help, version, check of the bundled config, the
configuration reference kept in step with the key tables, emit with flags,
and status."""
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(__file__))
import lfharness as h  # noqa: E402


def run(*args, **kw):
    return subprocess.run([h.BIN] + list(args), stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, **kw)


class Cli(h.TestCase):
    def test_version_and_help(self):
        p = run("--version")
        self.assertEqual(p.returncode, 0)
        self.assertRegex(p.stdout.decode(), r"^logferry \d+\.\d+\.\d+ \(sink ABI 1\)")
        for cmd in ("run", "check", "emit", "dump", "status", "config-doc"):
            p = run(cmd, "--help")
            self.assertEqual(p.returncode, 0, cmd)
            self.assertIn("usage: logferry " + cmd, p.stdout.decode())
        p = run("frobnicate")
        self.assertEqual(p.returncode, 2)
        self.assertIn("unknown command", p.stderr.decode())

    def test_bundled_config_is_valid(self):
        p = run("check", "-c", os.path.join(h.SRC, "conf", "logferry.conf"),
                "--module-dir", h.MODULES)
        self.assertEqual(p.returncode, 0, p.stderr.decode())
        self.assertIn("ok (1 sink)", p.stdout.decode())

    def test_example_configs_are_valid(self):
        d = os.path.join(h.SRC, "conf", "examples")
        names = sorted(n for n in os.listdir(d) if n.endswith(".conf"))
        self.assertIn("multi-tenant.conf", names)
        for n in names:
            p = run("check", "-c", os.path.join(d, n), "--module-dir", h.MODULES)
            self.assertEqual(p.returncode, 0, n + ": " + p.stderr.decode())

    def test_bundled_config_runs_from_scratch(self):
        # What scripts/demo.sh does: the bundled config, relative paths,
        # in a directory where nothing exists yet; emit may run first.
        import shutil
        import time
        shutil.copytree(os.path.join(h.SRC, "conf"), os.path.join(self.root, "conf"))
        cmd = [h.BIN, "emit", "-c", "conf/logferry.conf", "--module-dir", h.MODULES,
               "--tenant_id", "t", "-n", "3"]
        p = subprocess.run(cmd, cwd=self.root, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE)
        self.assertEqual(p.returncode, 0, p.stderr.decode())
        agent = subprocess.Popen([h.BIN, "run", "-c", "conf/logferry.conf",
                                  "--module-dir", h.MODULES], cwd=self.root,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        out = os.path.join(self.root, "var", "out", "records.ndjson")
        deadline = time.time() + 20
        while time.time() < deadline:
            if os.path.exists(out):
                with open(out) as f:
                    if len(f.readlines()) == 3:
                        break
            time.sleep(0.1)
        agent.terminate()
        _, err = agent.communicate(timeout=30)
        self.assertEqual(agent.returncode, 0, err.decode())
        with open(out) as f:
            self.assertEqual(len(f.readlines()), 3)

    def test_config_reference_matches_code(self):
        p = run("config-doc", "--module-dir", h.MODULES)
        self.assertEqual(p.returncode, 0, p.stderr.decode())
        with open(os.path.join(h.SRC, "docs", "CONFIG.md")) as f:
            doc = f.read()
        self.assertEqual(doc, p.stdout.decode(),
                         "docs/CONFIG.md is stale: regenerate it with "
                         "`build/logferry config-doc --module-dir build/sinks "
                         "> docs/CONFIG.md`")

    def test_emit_flags_dump_and_status(self):
        a = self.agent()
        p = subprocess.run(a.cmd("emit", "--tenant_id", "t-1", "--model_id", "m",
                                 "--input_tokens", "12", "--status", "throttled",
                                 "--attr", "feature=chat", "-n", "3"),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.assertEqual(p.returncode, 0, p.stderr.decode())
        p = subprocess.run(a.cmd("emit", "--input_tokens", "-5"),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.assertNotEqual(p.returncode, 0)
        p = subprocess.run(a.cmd("dump"), stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE)
        self.assertEqual(p.returncode, 0, p.stderr.decode())
        import json
        lines = [json.loads(l) for l in p.stdout.splitlines()]
        self.assertEqual(len(lines), 3)
        r = lines[0]["record"]
        self.assertEqual((r["tenant_id"], r["input_tokens"], r["status"],
                          r["attributes"]), ("t-1", 12, "throttled",
                                             {"feature": "chat"}))
        self.assertEqual(len({l["record"]["record_id"] for l in lines}), 3)
        p = subprocess.run(a.cmd("status"), stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE)
        self.assertEqual(p.returncode, 0, p.stderr.decode())
        out = p.stdout.decode()
        self.assertIn("sink local (file)", out)
        self.assertIn("backlog: 3 records", out)
        self.assertIn("oldest undelivered:", out)
        a.start()
        a.wait_delivered(3)
        self.assertEqual(a.stop(), 0)
        out = subprocess.run(a.cmd("status"), stdout=subprocess.PIPE).stdout.decode()
        self.assertIn("backlog: 0 records", out)
        self.assertIn("delivered=3", out)
        # emit --json rejects unknown fields with the line number.
        p = subprocess.run(a.cmd("emit", "--json"), input=b'{"tenant_id":"a"}\n{"nope":1}\n',
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.assertEqual(p.returncode, 1)
        self.assertIn("stdin:2: nope: not a field", p.stderr.decode())


if __name__ == "__main__":
    h.main()
