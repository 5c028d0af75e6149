"""Partial answers and dead letters: records a sink refuses for good go to
the dead-letter spool with the reason and the sink, `logferry dump
--dead-letter` shows them; records refused once are re-sent alone, so the
accepted ones are not duplicated; RETRY answers are retried."""
import collections
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(__file__))
import lfharness as h  # noqa: E402


class DeadLetters(h.TestCase):
    def test_partial_fail_and_retry(self):
        out = os.path.join(self.root, "out", "accepted.txt")
        a = self.agent(sinks=(
            '{ name = "t"; type = "testsink"; path = "%s"; fail_tenant = "bad";'
            '  retry_tenant = "flaky"; retry_calls = 3; batch_max_records = 50;'
            '  backoff_base = "5ms"; backoff_cap = "20ms"; }' % out))
        recs = []
        for i in range(600):
            tenant = ("bad", "flaky", "good")[i % 3]
            recs.append(h.record(i, tenant=tenant))
        a.emit_json(recs)
        a.start()
        want = {r["record_id"] for r in recs if r["tenant_id"] != "bad"}
        import time
        deadline = time.time() + 60
        lines = []
        while time.time() < deadline:
            if os.path.exists(out):
                with open(out) as f:
                    lines = f.read().split()
                if len(set(lines[0::2])) >= len(want):
                    break
            time.sleep(0.1)
        self.assertEqual(a.stop(), 0)
        ids = collections.Counter(lines[0::2])
        self.assertEqual(set(ids), want)
        self.assertEqual(max(ids.values()), 1,
                         "accepted records were sent again")
        p = subprocess.run(a.cmd("dump", "--dead-letter"),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.assertEqual(p.returncode, 0, p.stderr.decode())
        dl = [json.loads(l) for l in p.stdout.splitlines()]
        self.assertEqual(len(dl), 200)
        self.assertEqual({d["record"]["record_id"] for d in dl},
                         {r["record_id"] for r in recs if r["tenant_id"] == "bad"})
        self.assertTrue(all(d["sink"] == "t" and
                            d["reason"] == "tenant refused by testsink" and
                            d["source_segment"].endswith(".lfs")
                            for d in dl))
        # The log counts, it does not copy records.
        self.assertIn("records refused, dead-lettered", a.log_text())
        self.assert_no_content_in_log(a, recs)


if __name__ == "__main__":
    h.main()
