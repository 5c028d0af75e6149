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


    def test_one_blocked_tenant_does_not_delay_others(self):
        # Tenant "slow" is refused (RETRY) for as long as its destination
        # is down; the others flow meanwhile, without duplicates; once it
        # is back, its records arrive, and only then may the spool go.
        out = os.path.join(self.root, "out", "t.txt")
        a = self.agent(sinks=(
            '{ name = "t"; type = "testsink"; path = "%s"; block_tenant = "slow";'
            '  batch_max_records = 100; backoff_base = "20ms"; backoff_cap = "200ms"; }'
            % out))
        a.start()
        import time
        recs = [h.record(i, tenant="slow" if i % 5 == 0 else "ok-%d" % (i % 3))
                for i in range(2000)]
        t0 = time.time()
        a.emit_json(recs)
        want_ok = {r["record_id"] for r in recs if r["tenant_id"] != "slow"}
        got = set()
        while time.time() < t0 + 20:
            if os.path.exists(out):
                with open(out) as f:
                    got = set(f.read().split()[0::2])
            if got >= want_ok:
                break
            time.sleep(0.05)
        self.assertEqual(got, want_ok, "other tenants were held up")
        elapsed = time.time() - t0
        self.assertLess(elapsed, 10)
        self.assertGreater(len(a.segments()), 0, "spool freed before delivery")
        open(out + ".unblock", "w").close()
        deadline = time.time() + 20
        while time.time() < deadline:
            with open(out) as f:
                ids = collections.Counter(f.read().split()[0::2])
            if len(ids) == len(recs):
                break
            time.sleep(0.1)
        self.assertEqual(a.stop(), 0)
        self.assertEqual(set(ids), {r["record_id"] for r in recs})
        self.assertEqual(max(ids.values()), 1)
        self.assertIn("parked for retry", a.log_text())
        print("others delivered in %.2f s while one tenant was down" % elapsed)

    def test_max_retry_duration_dead_letters(self):
        # A destination that never accepts (a full device): after
        # max_retry_duration the records are dead-lettered with the reason.
        a = self.agent(sinks='{ name = "full"; type = "file"; path = "/dev/full";'
                             ' max_retry_duration = "1s"; backoff_cap = "100ms"; }')
        recs = [h.record(i) for i in range(50)]
        a.emit_json(recs)
        a.start()
        import time
        deadline = time.time() + 20
        while "retries exhausted" not in a.log_text() and time.time() < deadline:
            time.sleep(0.1)
        time.sleep(0.5)
        self.assertEqual(a.stop(), 0)
        p = subprocess.run(a.cmd("dump", "--dead-letter"), stdout=subprocess.PIPE)
        dl = [json.loads(l) for l in p.stdout.splitlines()]
        self.assertEqual({d["record"]["record_id"] for d in dl},
                         {r["record_id"] for r in recs})
        self.assertTrue(dl[0]["reason"].startswith("gave up after max_retry_duration"))
        # Given up means passed: the spool does not keep them.
        self.assertEqual(a.segments(), [])


if __name__ == "__main__":
    h.main()
