"""Helpers for the end-to-end tests: they run the real `logferry` binary
and real writer processes in a private temporary directory.

Environment (set by ctest): LF_BUILD_DIR (the build tree whose binaries
are tested, e.g. build/ or build-asan/) and LF_SOURCE_DIR.
"""
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

SRC = os.environ.get("LF_SOURCE_DIR") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.environ.get("LF_BUILD_DIR") or os.path.join(SRC, "build")
BIN = os.path.join(BUILD, "logferry")
MODULES = os.path.join(BUILD, "sinks")
SANITIZED = bool(os.environ.get("LF_SANITIZED"))


def record(i, writer=0, tenant=None, prompt=None):
    """A typical invocation record as a JSON-able dict with a unique id."""
    rid = "%08x%08x%016x" % (writer, 0xC0FFEE, i)
    return {
        "record_id": rid,
        "event_time_ns": 1764000000000000000 + i * 1000,
        "tenant_id": tenant or "tenant-%d" % (i % 7),
        "account_id": "%012d" % (100000000000 + i % 7),
        "app": "e2e",
        "region": "us-east-1",
        "model_id": "anthropic.claude-3-haiku-20240307-v1:0",
        "operation": "Converse",
        "input_tokens": 100 + i % 50,
        "output_tokens": 20 + i % 13,
        "latency_ms": 300 + i % 100,
        "status": "ok",
        "prompt_text": prompt if prompt is not None else "secret prompt %d" % i,
        "attributes": {"seq": str(i), "writer": str(writer)},
    }


class Agent:
    """A logferry agent on a generated config inside `root`."""

    def __init__(self, root, sinks=None, extra="", log_level="info"):
        self.root = root
        self.spool = os.path.join(root, "spool")
        self.state = os.path.join(root, "state")
        self.out = os.path.join(root, "out", "records.ndjson")
        os.makedirs(os.path.dirname(self.out), exist_ok=True)
        self.conf = os.path.join(root, "logferry.conf")
        if sinks is None:
            sinks = ('{ name = "local"; type = "file"; path = "%s"; '
                     'batch_max_records = 1000; cursor_commit_interval = 0; }'
                     % self.out)
        self.write_conf(sinks, extra, log_level)
        self.proc = None
        self.logs = []
        self.log_path = os.path.join(root, "agent.log")

    def write_conf(self, sinks, extra="", log_level="info"):
        with open(self.conf, "w") as f:
            f.write('log_level = "%s";\nstate_dir = "%s";\nmodule_dir = "%s";\n'
                    'spool: { dir = "%s"; rescan_interval = "200ms"; };\n'
                    'delivery: { shutdown_deadline = "10s"; };\n%s\n'
                    'sinks = ( %s );\n'
                    % (log_level, self.state, MODULES, self.spool, extra, sinks))

    def cmd(self, *args):
        return [BIN, args[0], "-c", self.conf] + list(args[1:])

    def start(self):
        self.logf = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.cmd("run"), stdout=self.logf,
                                     stderr=subprocess.STDOUT)
        return self

    def stop(self, sig=signal.SIGTERM, timeout=60):
        if not self.proc:
            return None
        self.proc.send_signal(sig)
        rc = self.proc.wait(timeout=timeout)
        self.proc = None
        self.logf.close()
        return rc

    def kill9(self):
        return self.stop(signal.SIGKILL)

    def log_text(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def emit_json(self, records, extra_args=()):
        data = "".join(json.dumps(r) + "\n" for r in records).encode()
        p = subprocess.run(self.cmd("emit", "--json", *extra_args), input=data,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        if p.returncode != 0:
            raise AssertionError("emit failed: %s" % p.stderr.decode())
        return p

    def emit_async(self, records):
        """Start a writer process; returns the Popen (stdin already fed)."""
        p = subprocess.Popen(self.cmd("emit", "--json"), stdin=subprocess.PIPE,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        return p, "".join(json.dumps(r) + "\n" for r in records).encode()

    def delivered(self, path=None, strict=True):
        """Records in the file sink output (and its rotated files). With
        strict=False a last line without its newline (being written right
        now) is skipped; with strict=True every line must be whole JSON."""
        path = path or self.out
        d = os.path.dirname(path)
        base = os.path.basename(path)
        out = []
        for name in sorted(os.listdir(d)):
            if name == base or name.startswith(base + "."):
                with open(os.path.join(d, name), "rb") as f:
                    for line in f:
                        if not strict and not line.endswith(b"\n"):
                            continue
                        out.append(json.loads(line))
        return out

    def wait_delivered(self, n, timeout=120, path=None):
        deadline = time.time() + timeout
        got = []
        while time.time() < deadline:
            got = self.delivered(path, strict=False)
            if len({r["record_id"] for r in got}) >= n:
                return self.delivered(path)
            if self.proc and self.proc.poll() is not None:
                raise AssertionError("agent exited with %s:\n%s" %
                                     (self.proc.returncode, self.log_text()[-4000:]))
            time.sleep(0.1)
        raise AssertionError("only %d of %d records delivered in %ss\n%s" % (
            len({r["record_id"] for r in got}), n, timeout, self.log_text()[-4000:]))

    def segments(self):
        return sorted(n for n in os.listdir(self.spool) if n.endswith(".lfs"))


class TestCase(unittest.TestCase):
    def setUp(self):
        self.root = tempfile.mkdtemp(prefix="lf-e2e-")
        self.agents = []

    def tearDown(self):
        for a in self.agents:
            if a.proc:
                a.proc.kill()
                a.proc.wait()
        if os.environ.get("LF_KEEP_TMP"):
            print("kept", self.root)
        else:
            shutil.rmtree(self.root, ignore_errors=True)

    def agent(self, **kw):
        a = Agent(self.root, **kw)
        self.agents.append(a)
        return a

    def assert_no_content_in_log(self, agent, records):
        text = agent.log_text()
        for r in records[:2000]:
            p = r.get("prompt_text")
            if p:
                self.assertNotIn(p, text, "record content leaked into the log")


def main():
    unittest.main(verbosity=2)
