"""A full disk: the writer refuses records with a clear error and leaves
no corrupt segment; every record it acknowledged is delivered; writing
works again once the agent has delivered and freed the space. Runs on a
small tmpfs (needs root to mount; CI runs as root)."""
import json
import os
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import lfharness as h  # noqa: E402


class DiskFull(h.TestCase):
    def setUp(self):
        super().setUp()
        self.mnt = os.path.join(self.root, "spool")
        os.makedirs(self.mnt)
        p = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", self.mnt],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        if p.returncode != 0:
            raise unittest.SkipTest("cannot mount a tmpfs here: %s" % p.stderr.decode())

    def tearDown(self):
        subprocess.run(["umount", "-l", self.mnt])
        super().tearDown()

    def test_full_spool_refuses_then_recovers(self):
        a = self.agent()
        recs = [h.record(i, prompt="x" * 2000) for i in range(1000)]  # ~2 MB
        p = subprocess.run(a.cmd("emit", "--json", "--durable"),
                           input="".join(json.dumps(r) + "\n" for r in recs).encode(),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        err = p.stderr.decode()
        self.assertEqual(p.returncode, 1, "the disk never filled")
        self.assertIn("No space", err + "no space")  # named error
        failed_lines = {int(l.split(":")[1]) for l in err.splitlines()
                        if l.startswith("stdin:")}
        acked = [r for i, r in enumerate(recs) if (i + 1) not in failed_lines]
        self.assertGreater(len(acked), 100)
        self.assertLess(len(acked), len(recs))
        # No corrupt segment on the full disk.
        d = subprocess.run(a.cmd("dump"), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.assertEqual(d.returncode, 0, d.stderr.decode())
        self.assertIn("0 damaged regions", d.stderr.decode())
        # Every acknowledged record is delivered, and the space comes back.
        a.start()
        got = a.wait_delivered(len(acked))
        self.assertEqual({r["record_id"] for r in got}, {r["record_id"] for r in acked})
        import time
        deadline = time.time() + 10
        while a.segments() and time.time() < deadline:
            time.sleep(0.1)
        self.assertEqual(a.segments(), [], "delivered segments not removed")
        self.assertEqual([n for n in os.listdir(self.mnt) if n.endswith(".tmp")], [],
                         "a half-created segment was left behind")
        more = [h.record(i, prompt="y" * 2000) for i in range(5000, 5100)]
        a.emit_json(more, extra_args=("--durable",))
        a.wait_delivered(len(acked) + 100)
        self.assertEqual(a.stop(), 0)


if __name__ == "__main__":
    h.main()
