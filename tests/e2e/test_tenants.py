"""Tenant isolation as a property, and delivery you can trust, against
moto (auth on, one account per tenant) through the fault proxy:
- 1,000 tenants, randomised records and routes over two CloudWatch sink
  instances: zero records in a wrong account, every record in the right
  one (exactly its route's group), unroutable records dead-lettered;
- an outage of the CloudWatch endpoint during continuous writing, then
  recovery: everything delivered, duplicates bounded, RSS flat;
- kill -9 during the drain at 20 random moments: nothing lost."""
import collections
import json
import os
import random
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(__file__))
import lfharness as lh  # noqa: E402
import test_cloudwatch as tc  # noqa: E402


class Tenants(tc.CloudWatchBase):
    TENANT_COUNT = 1000

    def group_events(self, t, prefix):
        """Every event of tenant t's account under log groups `prefix`."""
        c = self.logs(t)
        groups = [g["logGroupName"] for g in
                  c.describe_log_groups(logGroupNamePrefix=prefix)["logGroups"]]
        out = []
        for g in groups:
            out += [(g, json.loads(m)) for _, _, m in self.events(t, g, client=c)]
        return out

    def test_isolation_property(self):
        rng = random.Random(20261125)
        n_t = self.TENANT_COUNT
        # Random routes: each leading digit of the tenant number goes to
        # sink a or b; one digit is left unrouted on purpose.
        digits = list("123456789")
        rng.shuffle(digits)
        unrouted_digit = digits.pop()
        routes = []
        expect_sink = {}
        for d in digits:
            s = rng.choice(["a", "b"])
            expect_sink[d] = s
            routes.append('{ name = "r%s"; match = { tenant_id = "tenant-%s*"; }; '
                          'sinks = ["cw-%s"]; }' % (d, d, s))
        extra = 'routes = ( %s );' % ", ".join(routes)
        recs = []
        for i in range(3 * n_t):
            t = rng.randrange(n_t)
            r = lh.record(i, writer=77, tenant="tenant-%d" % t)
            r["account_id"] = self.h.tenants[t]["account_id"]
            r["event_time_ns"] = time.time_ns() - 60 * 10**9 + i * 10**6
            if rng.random() < 0.01:
                del r["account_id"]  # no account: the role cannot be built
            recs.append(r)
        sinks = ", ".join(self.sink(name="cw-" + s,
                                    log_group="/iso/%s/${tenant_id}" % s)
                          for s in "ab")
        a = self.start_agent(sinks)
        with open(a.conf, "a") as f:
            f.write(extra + "\n")
        self.emit(a, recs)
        a.start()

        def dest(r):
            d = r["tenant_id"].split("-")[1][0]
            return None if d == unrouted_digit or d == "0" else expect_sink[d]
        want = collections.Counter(dest(r) for r in recs if "account_id" in r)
        for s in "ab":
            n = want[s] + sum(1 for r in recs if "account_id" not in r and dest(r) == s)
            self.wait_settled(a, n, sink="cw-" + s, timeout=600)
        self.assertEqual(a.stop(), 0)
        self.assert_no_violation()
        # Read every account back and check the property.
        by_id = {r["record_id"]: r for r in recs}
        seen = collections.Counter()
        wrong = []
        # Reading 1,000 accounts back is boto3-bound: a few threads.
        from concurrent.futures import ThreadPoolExecutor
        with ThreadPoolExecutor(8) as pool:
            per_tenant = list(pool.map(lambda t: self.group_events(t, "/iso/"),
                                       range(n_t)))
        for t in range(n_t):
            for g, m in per_tenant[t]:
                rid = m["record_id"]
                seen[rid] += 1
                r = by_id.get(rid)
                if (not r or r.get("account_id") != self.h.tenants[t]["account_id"]
                        or g != "/iso/%s/%s" % (dest(r), r["tenant_id"])):
                    wrong.append((t, g, rid))
        self.assertEqual(wrong, [], "records in a wrong account or group")
        expected = {r["record_id"] for r in recs
                    if "account_id" in r and dest(r) is not None}
        self.assertEqual(set(seen), expected, "records missing")
        self.assertEqual(max(seen.values()), 1, "records delivered twice")
        dl = {d["record"]["record_id"] for d in self.dead_letters(a)}
        self.assertEqual(dl, {r["record_id"] for r in recs
                              if "account_id" not in r or dest(r) is None})
        self.assert_clean_log(a, recs)
        print("\n%d tenants, %d records: %d delivered to their own accounts, "
              "%d dead-lettered (unroutable), 0 misplaced"
              % (n_t, len(recs), len(expected), len(dl)), file=sys.stderr)

    def test_outage_then_recovery_and_kill9(self):
        tenants = list(range(10))
        a = self.start_agent(self.sink(log_group="/outage/${tenant_id}",
                                       backoff_cap="500ms"))
        a.start()
        # Continuous writing: a writer process appends every 20 ms.
        stop = threading.Event()
        written = []

        def writer():
            while not stop.is_set():
                batch = self.records(tenants, 20)
                a.emit_json(batch)
                written.extend(batch)
                time.sleep(0.02)
        th = threading.Thread(target=writer)
        th.start()
        time.sleep(1)
        # The endpoint goes down (503 on every Logs call) for 8 s.
        self.h.proxy.add_fault(kind="error", status=503, service="logs",
                               count=None, seconds=8)
        time.sleep(8)
        rss = []
        for _ in range(10):
            rss.append(self.usage(a)[1])
            time.sleep(0.2)
        # Drain while killing the agent at 20 random moments.
        rng = random.Random(5)
        for _ in range(20):
            time.sleep(rng.uniform(0.05, 0.3))
            a.kill9()
            a.start()
        stop.set()
        th.join()
        self.wait_settled(a, 1, timeout=30)
        deadline = time.time() + 300
        want = {r["record_id"] for r in written}
        got = collections.Counter()
        while time.time() < deadline:
            got = collections.Counter()
            for t in tenants:
                for _, m in self.group_events(t, "/outage/"):
                    got[m["record_id"]] += 1
            if set(got) >= want:
                break
            time.sleep(1)
        self.assertEqual(a.stop(), 0)
        self.assertEqual(set(got) - want, set())
        self.assertEqual(want - set(got), set(), "records lost in the outage")
        dup = sum(v - 1 for v in got.values())
        # In flight per crash: at most one batch per stream set (the sink's
        # batch, 10,000 records) — far more than this test writes.
        print("\noutage: %d records written during an 8 s outage and 20 kills, "
              "all delivered, %d duplicates, RSS during the backlog %d-%d KiB"
              % (len(want), dup, min(rss), max(rss)), file=sys.stderr)
        # Under ASan the shadow memory and quarantine make RSS meaningless.
        if not lh.SANITIZED:
            self.assertLess(max(rss), 64 * 1024, "memory grew with the backlog")
        self.assert_no_violation()


if __name__ == "__main__":
    lh.main()
