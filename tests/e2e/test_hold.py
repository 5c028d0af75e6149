"""Records a sink holds (LF_REC_HOLD): the core neither offers them again
nor moves its cursor past them until the sink settles them, so a kill -9
while records are held loses none, and what the sink settles goes where its
verdict says (delivered, dead letters, or parked and offered again).
Driven through the test module's `hold` mode."""
import collections
import json
import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
import lfharness as h  # noqa: E402


def ids_in(path):
    if not os.path.exists(path):
        return collections.Counter()
    with open(path) as f:
        return collections.Counter(f.read().split()[0::2])


def wait_for(pred, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred():
            return True
        time.sleep(0.05)
    return pred()


class Hold(h.TestCase):
    def status(self, a):
        return subprocess.run(a.cmd("status"), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE).stdout.decode()

    def counter(self, a, name):
        m = re.search(r"\b%s=(\d+)" % re.escape(name), self.status(a))
        return int(m.group(1)) if m else 0

    def test_settled_verdicts_and_cursor(self):
        out = os.path.join(self.root, "out", "t.txt")
        a = self.agent(sinks=(
            '{ name = "t"; type = "testsink"; path = "%s"; hold = 700;'
            '  hold_poll = "100ms"; fail_tenant = "bad"; retry_tenant = "flaky";'
            '  batch_max_records = 100; backoff_base = "5ms"; backoff_cap = "20ms";'
            '  cursor_commit_interval = 0; }' % out))
        recs = [h.record(i, tenant=("bad", "flaky", "good", "good")[i % 4])
                for i in range(3000)]
        a.emit_json(recs)
        a.start()
        want = {r["record_id"] for r in recs if r["tenant_id"] != "bad"}
        self.assertTrue(wait_for(lambda: set(ids_in(out)) >= want),
                        a.log_text()[-3000:])
        self.assertTrue(wait_for(lambda: "backlog: 0 records" in self.status(a)),
                        self.status(a))
        self.assertEqual(a.stop(), 0)
        ids = ids_in(out)
        self.assertEqual(set(ids), want)
        self.assertEqual(max(ids.values()), 1, "a settled record was sent again")
        p = subprocess.run(a.cmd("dump", "--dead-letter"), stdout=subprocess.PIPE)
        dl = [json.loads(l) for l in p.stdout.splitlines()]
        self.assertEqual(sorted(d["record"]["record_id"] for d in dl),
                         sorted(r["record_id"] for r in recs
                                if r["tenant_id"] == "bad"))
        self.assertTrue(all(d["reason"] == "tenant refused by testsink" and
                            d["source_segment"].endswith(".lfs") for d in dl))
        st = self.status(a)
        self.assertIn("held=", st)
        self.assertIn("delivered=%d" % len(want), st)
        self.assertIn("held records refused, dead-lettered", a.log_text())
        self.assert_no_content_in_log(a, recs)
        # The cursor moved past every settled record: a restart sends
        # nothing again.
        a.start()
        time.sleep(1.0)
        self.assertEqual(a.stop(), 0)
        self.assertEqual(ids_in(out), ids)

    def test_kill9_while_held_loses_nothing(self):
        out = os.path.join(self.root, "out", "t.txt")
        sink = ('{ name = "t"; type = "testsink"; path = "%s"; hold = %d;'
                '  hold_poll = "1h"; batch_max_records = 100;'
                '  cursor_commit_interval = 0; }')
        a = self.agent(sinks=sink % (out, 10000000))
        recs = [h.record(i) for i in range(1500)]
        a.emit_json(recs[:1000])
        a.start()
        self.assertTrue(wait_for(lambda: self.counter(a, "held") >= 1000),
                        self.status(a))
        # Held, not delivered: the cursor stays behind them.
        self.assertIn("backlog: 1000 records", self.status(a))
        a.emit_json(recs[1000:])
        self.assertTrue(wait_for(lambda: self.counter(a, "held") >= 1500))
        self.assertEqual(ids_in(out), collections.Counter())
        a.kill9()
        # Started again without holding: every record arrives.
        a.write_conf(sink % (out, 0))
        a.start()
        want = {r["record_id"] for r in recs}
        self.assertTrue(wait_for(lambda: set(ids_in(out)) >= want),
                        a.log_text()[-3000:])
        self.assertEqual(a.stop(), 0)
        self.assertEqual(set(ids_in(out)), want)

    def test_stop_settles_what_is_held(self):
        # A clean stop flushes: the sink settles what it holds, the cursor
        # moves past it, and the next start sends nothing again.
        out = os.path.join(self.root, "out", "t.txt")
        a = self.agent(sinks=(
            '{ name = "t"; type = "testsink"; path = "%s"; hold = 10000000;'
            '  hold_poll = "1h"; batch_max_records = 100; }' % out))
        recs = [h.record(i) for i in range(800)]
        a.emit_json(recs)
        a.start()
        self.assertTrue(wait_for(lambda: self.counter(a, "held") >= 800))
        self.assertEqual(a.stop(), 0)
        ids = ids_in(out)
        self.assertEqual(set(ids), {r["record_id"] for r in recs})
        self.assertIn("backlog: 0 records", self.status(a))
        self.assertNotIn("still held", a.log_text())
        a.start()
        time.sleep(1.0)
        self.assertEqual(a.stop(), 0)
        self.assertEqual(ids_in(out), ids)


if __name__ == "__main__":
    h.main()
