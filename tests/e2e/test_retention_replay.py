"""Retention (spool.max_age, keep_delivered) and replay (of a time range
while the agent runs, and of dead letters after a fix)."""
import collections
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
import lfharness as h  # noqa: E402


def ages(d):
    """Age of the oldest record in each segment of d holding records: at
    most now - creation (a writer's open, still empty segment holds no
    record and is not counted)."""
    now = time.time()
    out = []
    for n in os.listdir(d) if os.path.isdir(d) else []:
        p = os.path.join(d, n)
        try:
            if n.endswith(".lfs") and not n.startswith(".") and os.path.getsize(p) > 64:
                out.append(now - int(n.split("-")[0], 16) / 1e9)
        except FileNotFoundError:
            pass
    return out


class Retention(h.TestCase):
    def stuck_and_t(self, extra):
        """An agent with two sinks: "stuck" never delivers (a full device);
        "t" dead-letters tenant "bad". Returns it and t's output path."""
        out = os.path.join(self.root, "out", "t.txt")
        a = self.agent(
            sinks='{ name = "stuck"; type = "file"; path = "/dev/full"; '
                  '  backoff_cap = "200ms"; },'
                  '{ name = "t"; type = "testsink"; path = "%s"; fail_tenant = "bad"; }'
                  % out,
            extra=extra)
        return a, out

    def test_max_age_purges_undelivered_and_dead_letters(self):
        a, out = self.stuck_and_t('')
        with open(a.conf) as f:
            conf = f.read().replace('rescan_interval = "200ms";',
                                    'rescan_interval = "200ms"; max_age = "3s";')
        with open(a.conf, "w") as f:
            f.write(conf)
        a.start()
        recs = [h.record(i, tenant="bad" if i % 2 else "good") for i in range(400)]
        a.emit_json(recs[:200])
        time.sleep(1.5)
        a.emit_json(recs[200:])
        # Bound: max_age (3 s) + one rotation interval (the emit writer seals
        # at once; the dead-letter writer rotates every max_age/2 = 1.5 s)
        # + one rescan (0.2 s).
        bound = 3 + 1.5 + 0.5
        deadline = time.time() + 12
        worst = 0.0
        while time.time() < deadline:
            for d in (a.spool, os.path.join(a.state, "deadletter")):
                worst = max([worst] + ages(d))
            time.sleep(0.1)
        self.assertLessEqual(worst, bound, "a file outlived max_age")
        self.assertEqual(a.segments(), [])
        log = a.log_text()
        self.assertIn("retention purged undelivered records", log)
        self.assertIn("sink=stuck", log)
        self.assertIn("retention purged dead letters", log)
        self.assertEqual(a.stop(), 0)
        st = subprocess.run(a.cmd("status"), stdout=subprocess.PIPE).stdout.decode()
        self.assertIn("retention_purged=400", st)
        self.assert_no_content_in_log(a, recs)

    def test_route_max_age_purges_records_in_place(self):
        """Per-route retention: records with prompt text may stay 2 s,
        metadata-only records have no limit. Both kinds share segments
        (one emit), so the prompt records must be removed from segments
        that stay: undelivered ones (sink "stuck") and dead letters."""
        a, out = self.stuck_and_t(
            'routes = (\n'
            ' { name = "prompts"; match = { prompt_text = "?*"; };\n'
            '   sinks = ["stuck", "t"]; max_age = "2s"; },\n'
            ' { name = "meta"; sinks = ["stuck", "t"]; }\n'
            ');')
        a.start()
        now = time.time_ns()
        recs = []
        for i in range(400):
            r = h.record(i, tenant="bad" if i % 4 < 2 else "good",
                         prompt="PROMPT-SECRET-%05d" % i if i % 2 == 0 else "")
            r["event_time_ns"] = now + i
            recs.append(r)
        a.emit_json(recs)
        secrets = {r["prompt_text"]: r["event_time_ns"] / 1e9
                   for r in recs if r["prompt_text"]}

        def files():
            out = []
            for d in (a.spool, os.path.join(a.state, "deadletter")):
                for n in os.listdir(d) if os.path.isdir(d) else []:
                    if n.endswith(".lfs"):
                        out.append(os.path.join(d, n))
            return out

        def present():
            blob = b""
            for p in files():
                try:
                    with open(p, "rb") as f:
                        blob += f.read()
                except FileNotFoundError:
                    pass
            return {s for s in secrets if s.encode() in blob}

        # Wait for the dead letters to exist, so both places are checked.
        deadline = time.time() + 20
        while time.time() < deadline and not os.listdir(
                os.path.join(a.state, "deadletter")):
            time.sleep(0.05)
        # Bound: max_age (2 s) + one GC pass (rescan 0.2 s) + the pass
        # itself; 1 s of slack for a loaded (or sanitized) CI machine.
        bound = 2 + 0.2 + 1.0
        worst = 0.0
        left = set(secrets)
        deadline = time.time() + 15
        while left and time.time() < deadline:
            now_s = time.time()
            left = present()
            for s in left:
                worst = max(worst, now_s - secrets[s])
            time.sleep(0.05)
        print("route max_age: worst %.2f s" % worst, file=sys.stderr)
        self.assertEqual(left, set(), "prompt records still on disk")
        self.assertLessEqual(worst, bound, "a prompt record outlived its route's max_age")
        # Metadata-only records stay (undelivered to "stuck"), in the same
        # segments, at the same offsets.
        self.assertGreater(len(a.segments()), 0)
        p = subprocess.run(a.cmd("dump"), stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE)
        dumped = [json.loads(l) for l in p.stdout.splitlines() if l.strip()]
        ids = {d["record"]["record_id"] for d in dumped if "record" in d}
        self.assertEqual(ids, {r["record_id"] for r in recs if not r["prompt_text"]})
        log = a.log_text()
        self.assertIn("retention rules purged records", log)
        self.assertIn("where=spool", log)
        self.assertIn("where=dead_letters", log)
        self.assertNotIn("damage", log)
        self.assertEqual(a.stop(), 0)
        st = subprocess.run(a.cmd("status"), stdout=subprocess.PIPE).stdout.decode()
        self.assertIn("retention_purged=200", st)  # "stuck" never had them
        self.assert_no_content_in_log(a, recs)
        # Nothing prompt-bearing reached "t" after its deadline matters
        # less here; every good record reached it exactly once.
        with open(out) as f:
            got = f.read()
        for r in recs:
            if r["tenant_id"] == "good":
                self.assertIn(r["record_id"], got)

    def test_replay_time_range_while_agent_runs(self):
        a = self.agent(extra='')
        with open(a.conf) as f:
            conf = f.read().replace('rescan_interval = "200ms";',
                                    'rescan_interval = "200ms"; keep_delivered = "1h";')
        with open(a.conf, "w") as f:
            f.write(conf)
        a.start()
        recs = [h.record(i) for i in range(1000)]  # event times 1 us apart
        a.emit_json(recs)
        a.wait_delivered(1000)
        # Delivered segments are kept for keep_delivered.
        time.sleep(0.6)
        self.assertGreater(len(a.segments()), 0)
        with open(os.path.join(a.state, "cursors", "local.cursor")) as f:
            cursor_before = f.read()
        t0 = recs[300]["event_time_ns"]
        t1 = recs[500]["event_time_ns"]
        since = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t0 // 10**9)) + \
            ".%09dZ" % (t0 % 10**9)
        p = subprocess.run(a.cmd("replay", "--sink", "local", "--since", since,
                                 "--until", "@%d" % (t1 // 10**9 + 1)),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.assertEqual(p.returncode, 0, p.stderr.decode())
        self.assertIn("replay: 700 records offered", p.stderr.decode())
        # The live agent keeps going and its cursor is untouched by replay.
        more = [h.record(i) for i in range(1000, 1100)]
        a.emit_json(more)
        a.wait_delivered(1100)
        self.assertEqual(a.stop(), 0)
        ids = collections.Counter(r["record_id"] for r in a.delivered())
        twice = {k for k, v in ids.items() if v == 2}
        self.assertEqual(twice, {r["record_id"] for r in recs[300:1000]})
        self.assertEqual(sum(ids.values()), 1100 + 700)
        self.assertTrue(cursor_before.startswith("logferry-cursor"))

    def test_replay_dead_letters_after_fix(self):
        out = os.path.join(self.root, "out", "t.txt")
        sink = ('{ name = "t"; type = "testsink"; path = "%s"; %s }')
        a = self.agent(sinks=sink % (out, 'fail_tenant = "bad";'))
        recs = [h.record(i, tenant="bad" if i % 4 == 0 else "good") for i in range(400)]
        a.emit_json(recs)
        a.start()
        deadline = time.time() + 30
        while time.time() < deadline:
            if os.path.exists(out):
                with open(out) as f:
                    if len(f.read().split()) // 2 >= 300:
                        break
            time.sleep(0.1)
        self.assertEqual(a.stop(), 0)
        # The destination is fixed: replay what it refused.
        a.write_conf(sink % (out, ""))
        p = subprocess.run(a.cmd("replay", "--sink", "t", "--dead-letter"),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.assertEqual(p.returncode, 0, p.stderr.decode())
        self.assertIn("replay: 100 records offered", p.stderr.decode())
        self.assertIn("replayed and removed", p.stderr.decode())
        with open(out) as f:
            ids = collections.Counter(f.read().split()[0::2])
        self.assertEqual(set(ids), {r["record_id"] for r in recs})
        self.assertEqual(max(ids.values()), 1)
        p = subprocess.run(a.cmd("dump", "--dead-letter"), stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE)
        self.assertEqual(p.stdout, b"", "replayed dead letters are still there")


if __name__ == "__main__":
    h.main()
