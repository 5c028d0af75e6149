"""The cloudwatch sink end to end: the real agent against moto with
authentication on, through tests/aws/faultproxy.py (PutLogEvents limits,
the ExternalId check, faults on demand).

Every tenant has its own account and role (LogWriter, trusted with that
tenant's ExternalId); the agent runs with the ops user's keys and assumes
each tenant's role from the record's account_id. Results are read back
with boto3 as each tenant (GetLogEvents), and the proxy's counters say
whether any request broke a service limit.

LF_LONG=1 runs the issue's full sizes: 200,000 records across 50 tenants,
a 30 s throttle storm. The default sizes keep CI fast (20 tenants x 500
records, a 10 s storm).
"""
import collections
import json
import os
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(__file__))
import lfharness as lh  # noqa: E402

sys.path.insert(0, os.path.join(lh.SRC, "tests", "aws"))
from harness import Harness  # noqa: E402

LONG = bool(os.environ.get("LF_LONG"))
TENANTS = 50 if LONG else 20
PER_TENANT = 4000 if LONG else 500
STORM_S = 30 if LONG else 10
EMF_SCHEMA = os.path.join(lh.SRC, "tests", "data", "emf", "emf.schema.json")
MAX_EVENT = 1_048_550


def conf_value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(conf_value(x) for x in v) + "]"
    return json.dumps(v)


class CloudWatchBase(lh.TestCase):
    """moto + proxy for a class of tests, and the helpers they share
    (also used by test_tenants.py)."""
    TENANT_COUNT = TENANTS

    @classmethod
    def setUpClass(cls):
        cls.h = Harness(tenants=cls.TENANT_COUNT, proxy=True).start()
        # ExternalIds the template "ext-${account_id}" can build; the
        # proxy checks them on every AssumeRole (moto does not).
        for t in cls.h.tenants:
            t["external_id"] = "ext-" + t["account_id"]
        cls.saved_env = dict(os.environ)
        for k in list(os.environ):
            if k.startswith("AWS_"):
                del os.environ[k]
        os.environ.update(AWS_ACCESS_KEY_ID=cls.h.ops["access_key_id"],
                          AWS_SECRET_ACCESS_KEY=cls.h.ops["secret_access_key"],
                          AWS_SHARED_CREDENTIALS_FILE="/nonexistent",
                          AWS_CONFIG_FILE="/nonexistent",
                          AWS_EC2_METADATA_DISABLED="true")

    @classmethod
    def tearDownClass(cls):
        os.environ.clear()
        os.environ.update(cls.saved_env)
        cls.h.stop()

    def setUp(self):
        super().setUp()
        self.h.proxy.clear_faults()
        self.h.proxy.configure({"external_ids": {
            t["role_arn"]: t["external_id"] for t in self.h.tenants}})
        self.h.proxy.reset_stats()
        self.prefix = "/e2e/" + self._testMethodName
        self.writer = 0

    # ---- helpers ---------------------------------------------------------
    def sink(self, name="cwl", **kw):
        base = {"region": "us-east-1", "endpoint": self.h.endpoint,
                "role_arn": "arn:aws:iam::${account_id}:role/LogWriter",
                "external_id": "ext-${account_id}",
                "log_group": self.prefix + "/${tenant_id}",
                "log_stream": "${app}", "create_group": True,
                "cursor_commit_interval": "0"}
        base.update(kw)
        body = " ".join("%s = %s;" % (k, conf_value(v)) for k, v in base.items())
        return '{ name = "%s"; type = "cloudwatch"; %s }' % (name, body)

    def start_agent(self, sinks, log_level="info"):
        extra = 'aws: { sts_endpoint = "%s"; region = "us-east-1"; };' % self.h.endpoint
        a = self.agent(sinks=sinks, extra=extra, log_level=log_level)
        return a

    def records(self, tenants, per, age_s=60, prompt=None):
        """per records for each tenant index, interleaved, 1 ms apart,
        ending about now; record ids unique per call (writer id)."""
        self.writer += 1
        now = time.time_ns()
        out = []
        n = per * len(tenants)
        for j in range(per):
            for t in tenants:
                i = len(out)
                r = lh.record(i, writer=self.writer, tenant="tenant-%d" % t,
                              prompt=prompt)
                r["account_id"] = self.h.tenants[t]["account_id"]
                r["event_time_ns"] = now - age_s * 10**9 + (i - n) * 10**6
                out.append(r)
        return out

    def emit(self, agent, recs, chunk=50000):
        for k in range(0, len(recs), chunk):
            agent.emit_json(recs[k:k + chunk])

    def status(self, agent, sink="cwl"):
        try:
            with open(os.path.join(agent.state, "status.json")) as f:
                return json.load(f)["sinks"].get(sink, {})
        except (OSError, ValueError, KeyError):
            return {}

    def wait_settled(self, agent, n, sink="cwl", timeout=300):
        """Until the sink has acknowledged or dead-lettered n records."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            c = self.status(agent, sink)
            if c.get("delivered", 0) + c.get("dead_lettered", 0) >= n:
                return c
            if agent.proc and agent.proc.poll() is not None:
                self.fail("agent exited:\n" + agent.log_text()[-4000:])
            time.sleep(0.2)
        self.fail("sink %s settled %s of %d records in %ss\n%s" % (
            sink, self.status(agent, sink), n, timeout, agent.log_text()[-4000:]))

    def dead_letters(self, agent):
        p = subprocess.run(agent.cmd("dump", "--dead-letter"),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.assertEqual(p.returncode, 0, p.stderr.decode())
        return [json.loads(line) for line in p.stdout.splitlines()]

    def logs(self, t):
        return self.h.client("logs", self.h.assume(t), retries=3)

    def events(self, t, group, client=None):
        """[(stream, timestamp, message)] of a tenant's group, every stream,
        read with GetLogEvents as that tenant."""
        c = client or self.logs(t)
        streams = []
        kw = {"logGroupName": group}
        while True:
            r = c.describe_log_streams(**kw)
            streams += [s["logStreamName"] for s in r["logStreams"]]
            if not r.get("nextToken"):
                break
            kw["nextToken"] = r["nextToken"]
        out = []
        for s in streams:
            token = None
            while True:
                kw = {"logGroupName": group, "logStreamName": s,
                      "startFromHead": True}
                if token:
                    kw["nextToken"] = token
                r = c.get_log_events(**kw)
                out += [(s, e["timestamp"], e["message"]) for e in r["events"]]
                if not r["events"] or r["nextForwardToken"] == token:
                    break
                token = r["nextForwardToken"]
        return out

    @staticmethod
    def usage(agent):
        """(CPU seconds, peak RSS in KiB) of the running agent."""
        with open("/proc/%d/stat" % agent.proc.pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        with open("/proc/%d/status" % agent.proc.pid) as f:
            hwm = [int(line.split()[1]) for line in f if line.startswith("VmHWM")]
        return cpu, hwm[0] if hwm else 0

    def assert_clean_log(self, agent, recs):
        self.assert_no_content_in_log(agent, recs)
        text = agent.log_text()
        self.assertNotIn(self.h.ops["secret_access_key"], text)
        for t in self.h.tenants:
            self.assertNotIn(t["external_id"], text, "ExternalId in the log")

    def assert_no_violation(self):
        st = self.h.proxy.stats()
        self.assertEqual(st["violation_count"], 0, st["violations"][:5])
        return st



class CloudWatch(CloudWatchBase):
    # ---- tests -----------------------------------------------------------
    def test_tenants_land_in_own_accounts(self):
        """Each record in its own tenant's account, group and stream, none
        missing, none twice, none elsewhere, chronological, every request
        within the limits."""
        tenants = list(range(TENANTS))
        recs = self.records(tenants, PER_TENANT)
        a = self.start_agent(self.sink())
        self.emit(a, recs)
        t0 = time.monotonic()
        a.start()
        self.wait_settled(a, len(recs), timeout=1200 if LONG else 300)
        took = time.monotonic() - t0
        cpu, rss = self.usage(a)
        self.assertEqual(a.stop(), 0)
        self.assertEqual(self.dead_letters(a), [])
        st = self.assert_no_violation()
        ple = st["put_log_events"]
        print("\n%d records, %d tenants: %.1f s (%.0f records/s), agent CPU "
              "%.2f s, peak RSS %d KiB, %d PutLogEvents, %.0f bytes/request, "
              "max %d bytes / %d events"
              % (len(recs), TENANTS, took, len(recs) / took, cpu, rss,
                 ple["calls"], ple["bytes"] / max(ple["calls"], 1),
                 ple["max_bytes"], ple["max_events"]), file=sys.stderr)

        want = collections.defaultdict(set)
        for r in recs:
            want[r["tenant_id"]].add(r["record_id"])
        for t in tenants:
            tenant = "tenant-%d" % t
            c = self.logs(t)
            groups = [g["logGroupName"] for g in c.describe_log_groups(
                logGroupNamePrefix=self.prefix)["logGroups"]]
            self.assertEqual(groups, [self.prefix + "/" + tenant],
                             "account %d holds other groups" % t)
            ev = self.events(t, self.prefix + "/" + tenant, client=c)
            ids = [json.loads(m)["record_id"] for _, _, m in ev]
            self.assertEqual(len(ids), len(set(ids)), "duplicates")
            self.assertEqual(set(ids), want[tenant])
            for s, ts, m in ev:
                d = json.loads(m)
                self.assertEqual(d["tenant_id"], tenant)
                self.assertEqual(d["account_id"], self.h.tenants[t]["account_id"])
                self.assertEqual(ts, d["event_time_ns"] // 10**6)
                self.assertEqual(s, "e2e")
            stamps = [ts for _, ts, _ in ev]
            self.assertEqual(stamps, sorted(stamps))
        # Nothing in the ops account the agent's own keys belong to.
        ops = self.h.client("logs")
        self.assertEqual(ops.describe_log_groups(
            logGroupNamePrefix=self.prefix)["logGroups"], [])
        self.assertEqual(st["external_id_denied"], 0)
        self.assert_clean_log(a, recs)

    def test_throttle_storm(self):
        """Half of all CloudWatch calls throttled for a while: everything
        arrives once, and the call rate stays bounded (no busy loop)."""
        tenants = list(range(5))
        first = self.records(tenants, 400, age_s=120)
        a = self.start_agent(self.sink(backoff_cap="5s"))
        self.emit(a, first)
        self.h.proxy.add_fault(kind="throttle", service="logs",
                               probability=0.5, count=None, seconds=STORM_S)
        storm_from = time.time()
        a.start()
        time.sleep(STORM_S / 3)
        second = self.records(tenants, 400, age_s=60)
        self.emit(a, second)
        self.wait_settled(a, len(first) + len(second), timeout=STORM_S + 180)
        self.assertEqual(a.stop(), 0)
        st = self.assert_no_violation()
        self.h.proxy.clear_faults()  # the storm may outlast the delivery
        self.assertGreater(st["faults_served"].get("throttle", 0), 0)
        self.assertEqual(self.dead_letters(a), [])
        self.assert_all_once(tenants, first + second)
        during = [n for s, n in st["per_second"]
                  if storm_from <= s <= storm_from + STORM_S]
        calls = sum(during)
        print("\nstorm %d s: %d calls, peak %d/s, mean %.1f/s, %d throttled"
              % (STORM_S, calls, max(during or [0]), calls / STORM_S,
                 st["faults_served"].get("throttle", 0)), file=sys.stderr)
        # 5 streams: a busy loop would make hundreds of calls a second.
        self.assertLessEqual(max(during or [0]), 40)
        self.assertLessEqual(calls / STORM_S, 15)
        self.assertGreater(self.status(a).get("throttled", 0), 0)

    def test_deleted_group_is_recreated(self):
        tenants = [0, 1, 2]
        a = self.start_agent(self.sink(retention_days=14))
        first = self.records(tenants, 100, age_s=120)
        self.emit(a, first)
        a.start()
        self.wait_settled(a, len(first))
        group = self.prefix + "/tenant-1"
        self.logs(1).delete_log_group(logGroupName=group)
        # Keep writing while it is gone.
        second = self.records(tenants, 100, age_s=60)
        t = threading.Thread(target=self.emit, args=(a, second))
        t.start()
        t.join()
        self.wait_settled(a, len(first) + len(second))
        self.assertEqual(a.stop(), 0)
        self.assertEqual(self.dead_letters(a), [])
        self.assert_no_violation()
        c = self.logs(1)
        g = c.describe_log_groups(logGroupNamePrefix=group)["logGroups"]
        self.assertEqual([x["logGroupName"] for x in g], [group])
        self.assertEqual(g[0].get("retentionInDays"), 14)
        ids = {json.loads(m)["record_id"] for _, _, m in self.events(1, group, c)}
        self.assertEqual(ids, {r["record_id"] for r in second
                               if r["tenant_id"] == "tenant-1"})
        for t in (0, 2):
            ev = self.events(t, self.prefix + "/tenant-%d" % t)
            self.assertEqual(len(ev), 200)
        self.assertIn("not found", a.log_text())
        self.assertEqual(self.status(a).get("groups_created"), 4)

    def test_oversize_and_too_old(self):
        """A 2 MB event is truncated (with a marker, to at most 1,048,550
        bytes, never cut at 256 KB) or dead-lettered, as configured; a
        15-day-old event is dead-lettered; both counted."""
        big = ("0123456789abcdef" * 131072)  # 2 MiB
        sinks = ", ".join([
            self.sink("trunc", log_group=self.prefix + "/trunc/${tenant_id}"),
            self.sink("dl", log_group=self.prefix + "/dl/${tenant_id}",
                      oversize="dead_letter"),
        ])
        a = self.start_agent(sinks)
        recs = self.records([0], 3)
        recs += self.records([0], 1, prompt=big)
        old = self.records([0], 1)
        old[0]["event_time_ns"] = time.time_ns() - 15 * 86400 * 10**9
        recs += old
        self.emit(a, recs)
        a.start()
        self.wait_settled(a, 5, sink="trunc")
        self.wait_settled(a, 5, sink="dl")
        self.assertEqual(a.stop(), 0)
        self.assert_no_violation()

        ev = self.events(0, self.prefix + "/trunc/tenant-0")
        self.assertEqual(len(ev), 4)
        sizes = sorted(len(m.encode()) for _, _, m in ev)
        self.assertLessEqual(sizes[-1], MAX_EVENT)
        self.assertGreater(sizes[-1], MAX_EVENT - 100)
        longest = max((m for _, _, m in ev), key=len)
        self.assertIn("[truncated by logferry: ", longest[-80:])
        self.assertIn(big[:1000], longest)
        ev = self.events(0, self.prefix + "/dl/tenant-0")
        self.assertEqual(len(ev), 3)

        dl = self.dead_letters(a)
        by_sink = collections.defaultdict(list)
        for d in dl:
            by_sink[d["sink"]].append(d)
        self.assertEqual(len(by_sink["trunc"]), 1)
        self.assertIn("older than 14 days", by_sink["trunc"][0]["reason"])
        self.assertEqual(len(by_sink["dl"]), 2)
        reasons = sorted(d["reason"] for d in by_sink["dl"])
        self.assertIn("over the CloudWatch Logs limit", " ".join(reasons))
        self.assertIn("older than 14 days", " ".join(reasons))
        trunc, dlc = self.status(a, "trunc"), self.status(a, "dl")
        self.assertEqual(trunc.get("events_truncated"), 1)
        self.assertEqual(trunc.get("events_too_old"), 1)
        self.assertEqual(dlc.get("events_oversize"), 1)
        self.assertEqual(dlc.get("events_too_old"), 1)

    def test_access_denied_tenant_does_not_block_others(self):
        """A wrong ExternalId for one tenant: its records are dead-lettered
        with a reason naming the role and group (never the ExternalId);
        the others flow; a record without an account goes nowhere."""
        tenants = [0, 1, 2, 3]
        bad = self.h.tenants[2]
        self.h.proxy.configure({"external_ids": {bad["role_arn"]: "ext-rotated"}})
        recs = self.records(tenants, 50)
        orphan = self.records([0], 1)
        orphan[0]["account_id"] = ""
        a = self.start_agent(self.sink())
        self.emit(a, recs + orphan)
        a.start()
        self.wait_settled(a, len(recs) + 1)
        self.assertEqual(a.stop(), 0)
        self.assert_no_violation()
        self.assertGreater(self.h.proxy.stats()["external_id_denied"], 0)
        for t in (0, 1, 3):
            self.assertEqual(len(self.events(t, self.prefix + "/tenant-%d" % t)), 50)
        dl = self.dead_letters(a)
        denied = [d for d in dl if d["record"]["tenant_id"] == "tenant-2"]
        self.assertEqual(len(denied), 50)
        for d in denied:
            self.assertIn(bad["role_arn"], d["reason"])
            self.assertIn(self.prefix + "/tenant-2", d["reason"])
            self.assertIn("AccessDenied", d["reason"])
            self.assertNotIn("ext-", d["reason"].replace("external_id=", ""))
        lost = [d for d in dl if not d["record"].get("account_id")]
        self.assertEqual(len(lost), 1)
        self.assertIn("record has no account_id", lost[0]["reason"])
        self.assert_clean_log(a, recs)

    def test_retention_on_new_and_existing_groups(self):
        group0 = self.prefix + "/tenant-0"
        c0 = self.logs(0)
        c0.create_log_group(logGroupName=group0)
        c0.put_retention_policy(logGroupName=group0, retentionInDays=30)
        a = self.start_agent(self.sink(retention_days=7))
        recs = self.records([0, 1], 20)
        self.emit(a, recs)
        a.start()
        self.wait_settled(a, len(recs))
        self.assertEqual(a.stop(), 0)
        for t in (0, 1):
            g = self.logs(t).describe_log_groups(
                logGroupNamePrefix=self.prefix)["logGroups"]
            self.assertEqual(g[0]["retentionInDays"], 7)
        log = a.log_text()
        self.assertIn("retention of log group %s (%s) changed from 30 days to 7 days"
                      % (group0, self.h.tenants[0]["role_arn"]), log)
        self.assertIn("created log group %s/tenant-1" % self.prefix, log)

    def test_expired_token_refreshed(self):
        """ExpiredTokenException answers: the host refreshes the role's
        credentials and sends again; nothing is lost or dead-lettered."""
        tenants = [0, 1]
        a = self.start_agent(self.sink())
        self.h.proxy.add_fault(kind="expired", service="logs",
                               operation="PutLogEvents", count=3)
        recs = self.records(tenants, 100)
        self.emit(a, recs)
        a.start()
        self.wait_settled(a, len(recs))
        self.assertEqual(a.stop(), 0)
        st = self.assert_no_violation()
        self.assertEqual(st["faults_served"].get("expired"), 3)
        self.assertEqual(self.dead_letters(a), [])
        for t in tenants:
            ev = self.events(t, self.prefix + "/tenant-%d" % t)
            self.assertEqual(len({json.loads(m)["record_id"] for _, _, m in ev}), 100)

    def test_server_errors_and_resets_retried(self):
        """503s and connections reset mid-answer are retried. A reset
        request may have been stored (at least once): every record
        arrives, duplicates only from the reset calls."""
        tenants = [0, 1, 2]
        a = self.start_agent(self.sink(backoff_base="50ms"))
        self.h.proxy.add_fault(kind="error", status=503, service="logs",
                               operation="PutLogEvents", count=3)
        self.h.proxy.add_fault(kind="reset", service="logs",
                               operation="PutLogEvents", count=2)
        self.h.proxy.add_fault(kind="error", status=500, service="logs",
                               operation="CreateLogStream", count=1)
        recs = self.records(tenants, 200)
        self.emit(a, recs)
        a.start()
        self.wait_settled(a, len(recs))
        self.assertEqual(a.stop(), 0)
        st = self.assert_no_violation()
        self.assertEqual(st["faults_served"].get("reset"), 2)
        self.assertEqual(self.dead_letters(a), [])
        dups = 0
        for t in tenants:
            ev = self.events(t, self.prefix + "/tenant-%d" % t)
            ids = [json.loads(m)["record_id"] for _, _, m in ev]
            self.assertEqual(set(ids), {r["record_id"] for r in recs
                                        if r["tenant_id"] == "tenant-%d" % t})
            dups += len(ids) - len(set(ids))
        self.assertLessEqual(dups, 2 * 200)
        self.assertGreater(self.status(a).get("retryable_errors", 0), 0)

    def assert_all_once(self, tenants, recs):
        """Every record of recs in its tenant's group exactly once."""
        for t in tenants:
            ev = self.events(t, self.prefix + "/tenant-%d" % t)
            ids = [json.loads(m)["record_id"] for _, _, m in ev]
            self.assertEqual(len(ids), len(set(ids)), "duplicates")
            self.assertEqual(set(ids), {r["record_id"] for r in recs
                                        if r["tenant_id"] == "tenant-%d" % t})

    def test_many_tenants_make_large_requests(self):
        """Small core batches mixing every tenant: each stream's share is
        held until it fills min_request_bytes, so requests are large,
        none breaks a limit, and every record arrives once."""
        tenants = list(range(TENANTS))
        recs = self.records(tenants, 300)
        a = self.start_agent(self.sink(batch_max_records=200,
                                       min_request_bytes="100KB",
                                       flush_interval="10s"))
        self.emit(a, recs)
        a.start()
        self.wait_settled(a, len(recs))
        held = self.status(a).get("events_held", 0)
        self.assertEqual(a.stop(), 0)
        st = self.assert_no_violation()
        ple = st["put_log_events"]
        mean = ple["bytes"] / max(ple["calls"], 1)
        print("\n%d records, %d tenants, batches of 200: %d PutLogEvents, "
              "%.0f bytes/request (CloudWatch count), %d events held"
              % (len(recs), len(tenants), ple["calls"], mean, held),
              file=sys.stderr)
        # ~10 records per tenant per batch: unheld, ~7 KB requests.
        self.assertGreater(held, 0)
        self.assertGreaterEqual(mean, 50_000)
        self.assertLessEqual(ple["calls"], 4 * len(tenants))
        self.assertEqual(self.dead_letters(a), [])
        self.assert_all_once(tenants, recs)

    def test_kill9_while_held_loses_nothing(self):
        """Records held (in unlinked files) when the agent is killed with
        SIGKILL are delivered after the restart; no file is left."""
        tenants = [0, 1, 2, 3, 4]
        recs = self.records(tenants, 100)
        sink = self.sink(min_request_bytes="1MB", flush_interval="10s")
        a = self.start_agent(sink)
        self.emit(a, recs)
        a.start()
        deadline = time.time() + 60
        while self.status(a).get("events_held", 0) < len(recs):
            self.assertLess(time.time(), deadline, self.status(a))
            time.sleep(0.1)
        self.assertEqual(self.h.proxy.stats()["put_log_events"]["calls"], 0)
        inst = os.path.join(a.state, "sinks", "cwl")
        self.assertEqual([f for f in os.listdir(inst) if "hold" in f], [])
        a.kill9()
        self.assertEqual([f for f in os.listdir(inst) if "hold" in f], [])
        a.start()
        self.wait_settled(a, len(recs), timeout=120)
        self.assertEqual(a.stop(), 0)
        self.assert_no_violation()
        self.assertEqual(self.dead_letters(a), [])
        self.assert_all_once(tenants, recs)

    def test_emf_passes_the_schema(self):
        import jsonschema
        with open(EMF_SCHEMA) as f:
            schema = json.load(f)
        validator = jsonschema.Draft7Validator(schema)
        recs = self.records([0, 1], 10)
        for i, r in enumerate(recs):
            r["status"] = ("ok", "error", "throttled")[i % 3]
        a = self.start_agent(self.sink(format="emf", emf_namespace="LLM/Invocations"))
        self.emit(a, recs)
        a.start()
        self.wait_settled(a, len(recs))
        self.assertEqual(a.stop(), 0)
        n = 0
        for t in (0, 1):
            for _, ts, m in self.events(t, self.prefix + "/tenant-%d" % t):
                doc = json.loads(m)
                errs = [e.message for e in validator.iter_errors(doc)]
                self.assertEqual(errs, [])
                for d in doc["_aws"]["CloudWatchMetrics"]:
                    for dims in d["Dimensions"]:
                        for k in dims:
                            self.assertIsInstance(doc[k], str)
                    for mdef in d["Metrics"]:
                        self.assertIsInstance(doc[mdef["Name"]], (int, float))
                self.assertEqual(doc["_aws"]["Timestamp"], ts)
                self.assertEqual(doc["Errors"], int(doc["status"] != "ok"))
                self.assertEqual(doc["InputTokens"], doc["input_tokens"])
                self.assertEqual(doc["TenantId"], doc["tenant_id"])
                n += 1
        self.assertEqual(n, len(recs))


if __name__ == "__main__":
    lh.main()
