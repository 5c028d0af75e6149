"""Routing: each record reaches only the sinks its route names; a record
no route accepts (no tenant, say) is dead-lettered once, never sent to
another tenant's destination; fan-out mode; config errors name file:line."""
import collections
import json
import os
import random
import subprocess
import sys

sys.path.insert(0, os.path.dirname(__file__))
import lfharness as h  # noqa: E402


class Routing(h.TestCase):
    def setup_agent(self, mode="first"):
        o = os.path.join(self.root, "out")
        sinks = ",".join('{ name = "%s"; type = "file"; path = "%s/%s.ndjson"; }'
                         % (n, o, n) for n in ("acme", "globex", "audit"))
        routes = ('route_mode = "%s";\n'
                  'routes = (\n'
                  ' { name = "acme"; match = { tenant_id = "acme"; }; sinks = ["acme"]; },\n'
                  ' { name = "globex"; match = { tenant_id = "globex-*"; }; sinks = ["globex"]; },\n'
                  ' { name = "errors"; match = { status = "error"; }; sinks = ["audit"]; }\n'
                  ');' % mode)
        return self.agent(sinks=sinks, extra=routes), o

    def test_first_match_and_unrouted(self):
        a, o = self.setup_agent()
        rng = random.Random(7)
        recs = []
        for i in range(3000):
            t = rng.choice(["acme", "globex-eu", "globex-us", "", "initech"])
            r = h.record(i, tenant=t)
            if t == "":
                del r["tenant_id"]
            if rng.random() < 0.2:
                r["status"] = "error"
            recs.append(r)
        a.emit_json(recs)
        a.start()
        exp = collections.defaultdict(set)
        unrouted = set()
        for r in recs:
            t = r.get("tenant_id", "")
            if t == "acme":
                exp["acme"].add(r["record_id"])
            elif t.startswith("globex-"):
                exp["globex"].add(r["record_id"])
            elif r["status"] == "error":
                exp["audit"].add(r["record_id"])
            else:
                unrouted.add(r["record_id"])
        for n in ("acme", "globex", "audit"):
            got = a.wait_delivered(len(exp[n]), path=os.path.join(o, n + ".ndjson"))
            self.assertEqual({r["record_id"] for r in got}, exp[n], n)
        self.assertEqual(a.stop(), 0)
        p = subprocess.run(a.cmd("dump", "--dead-letter"), stdout=subprocess.PIPE)
        dl = [json.loads(l) for l in p.stdout.splitlines()]
        self.assertEqual([d["record"]["record_id"] for d in dl if True].__len__(),
                         len(unrouted), "unrouted records dead-lettered exactly once")
        self.assertEqual({d["record"]["record_id"] for d in dl}, unrouted)
        self.assertTrue(all(d["reason"] == "no route accepts the record" for d in dl))

    def test_fan_out(self):
        a, o = self.setup_agent(mode="all")
        recs = [h.record(0, tenant="acme"), h.record(1, tenant="acme")]
        recs[1]["status"] = "error"
        a.emit_json(recs)
        a.start()
        got = a.wait_delivered(2, path=os.path.join(o, "acme.ndjson"))
        audit = a.wait_delivered(1, path=os.path.join(o, "audit.ndjson"))
        self.assertEqual([r["record_id"] for r in audit], [recs[1]["record_id"]])
        self.assertEqual(len(got), 2)
        self.assertEqual(a.stop(), 0)

    def test_sink_with_few_records_keeps_memory_bounded(self):
        """A sink that routing sends 1 record in 1,500 skips the others:
        they must not pile up in its batch memory while it looks for
        enough of its own to fill a batch."""
        o = os.path.join(self.root, "out")
        sinks = ",".join('{ name = "%s"; type = "file"; path = "%s/%s.ndjson"; }'
                         % (n, o, n) for n in ("bulk", "rare"))
        routes = ('routes = (\n'
                  ' { name = "rare"; match = { tenant_id = "rare"; }; sinks = ["rare"]; },\n'
                  ' { name = "bulk"; sinks = ["bulk"]; }\n'
                  ');')
        a = self.agent(sinks=sinks, extra=routes)
        n = 150_000 if not h.SANITIZED else 30_000
        big = "x" * 600  # ~1 KB per record once decoded: 150 MB if kept
        recs = [h.record(i, tenant="rare" if i % 1500 == 0 else "bulk",
                         prompt=big) for i in range(n)]
        a.emit_json(recs)
        a.start()
        rare = [r["record_id"] for r in recs if r["tenant_id"] == "rare"]
        got = a.wait_delivered(len(rare), path=os.path.join(o, "rare.ndjson"))
        self.assertEqual(sorted(r["record_id"] for r in got), sorted(rare))
        a.wait_delivered(n - len(rare), path=os.path.join(o, "bulk.ndjson"))
        with open("/proc/%d/status" % a.proc.pid) as f:
            hwm_kb = [int(l.split()[1]) for l in f if l.startswith("VmHWM")][0]
        self.assertEqual(a.stop(), 0)
        if not h.SANITIZED:
            self.assertLess(hwm_kb, 64 * 1024, "agent peak RSS %d KiB" % hwm_kb)

    def test_route_config_errors(self):
        a = self.agent(extra='routes = ( { name = "x"; match = { colour = "red"; }; '
                             'sinks = ["nowhere"]; max_age = "soon"; } );\n'
                             'route_mode = "sometimes";')
        p = subprocess.run(a.cmd("check"), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.assertEqual(p.returncode, 1)
        err = p.stderr.decode()
        self.assertIn("routes[x].match.colour: not a record field", err)
        self.assertIn("routes[x].sinks: no sink named 'nowhere'", err)
        self.assertIn("route_mode: expected", err)
        self.assertIn("routes[x].max_age: expected a duration", err)
        self.assertIn(a.conf + ":", err)


if __name__ == "__main__":
    h.main()
