"""CloudWatch Logs and S3 on one agent (issue 6 acceptance): each sink
receives every record, and one destination being down does not delay the
other. The real agent against moto with authentication on, through the
fault proxy; two tenant accounts, each with its log group and bucket.

"Down" is the proxy answering 503 to every request of one service: the
CloudWatch sink keeps re-offering its batch (its cursor waits), the S3 sink
keeps staging and retries its uploads; meanwhile the other sink's records
must arrive as fast as before.
"""
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
import lfharness as h  # noqa: E402

sys.path.insert(0, os.path.join(h.SRC, "tests", "aws"))
from harness import Harness  # noqa: E402

H = None
INFO = None


def setUpModule():
    global H, INFO
    H = Harness(tenants=2, proxy=True)
    H.__enter__()
    INFO = H.info()
    H.proxy.configure({"external_ids": {t["role_arn"]: "ext-" + t["account_id"]
                                        for t in INFO["tenants"]}})
    for t in INFO["tenants"]:
        s3_of(t).create_bucket(Bucket="lf-both-" + t["account_id"])


def tearDownModule():
    H.__exit__(None, None, None)


def creds(t):
    return H.assume(t, external_id="ext-" + t["account_id"], endpoint=H.moto_endpoint)


def s3_of(t):
    return H.client("s3", creds(t), endpoint=H.moto_endpoint, retries=3)


def logs_of(t):
    return H.client("logs", creds(t), endpoint=H.moto_endpoint, retries=3)


class Both(h.TestCase):
    def setUp(self):
        super().setUp()
        H.proxy.clear_faults()
        self.prefix = "both-%d" % int(time.time() * 1000)
        self.writer = 0

    def records(self, n):
        """n records over both tenants, event times just before now (the
        Logs limits refuse old events), unique ids per call."""
        self.writer += 1
        now = time.time_ns()
        out = []
        for i in range(n):
            t = INFO["tenants"][i % 2]
            r = h.record(i, writer=self.writer, tenant="t-" + t["account_id"])
            r["account_id"] = t["account_id"]
            r["event_time_ns"] = now - 60 * 10**9 + i * 10**5
            out.append(r)
        return out

    def start(self):
        sinks = (
            '{ name = "cwl"; type = "cloudwatch"; region = "us-east-1"; '
            'endpoint = "%s"; role_arn = "arn:aws:iam::${account_id}:role/LogWriter"; '
            'external_id = "ext-${account_id}"; log_group = "/%s/${tenant_id}"; '
            'log_stream = "${app}"; create_group = true; backoff_cap = "1s"; }, '
            '{ name = "s3"; type = "s3"; region = "us-east-1"; endpoint = "%s"; '
            'path_style = true; bucket = "lf-both-${account_id}"; '
            'role_arn = "arn:aws:iam::${account_id}:role/LogWriter"; '
            'external_id = "ext-${account_id}"; prefix = "%s"; roll_age = "1s"; '
            'key_template = "${prefix}/${tenant_id}/${hostname}-${first}.ndjson${ext}"; '
            'retry_interval = "200ms"; retry_interval_max = "1s"; }'
            % (INFO["endpoint"], self.prefix, INFO["endpoint"], self.prefix))
        a = self.agent(sinks=sinks, extra='aws: { region = "us-east-1"; sts_endpoint = "%s"; };'
                       % INFO["endpoint"])
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update(AWS_ACCESS_KEY_ID=INFO["ops"]["access_key_id"],
                   AWS_SECRET_ACCESS_KEY=INFO["ops"]["secret_access_key"],
                   NO_PROXY="127.0.0.1,localhost")
        a.logf = open(a.log_path, "ab")
        a.proc = subprocess.Popen(a.cmd("run"), stdout=a.logf,
                                  stderr=subprocess.STDOUT, env=env)
        return a

    def in_s3(self):
        ids = []
        for t in INFO["tenants"]:
            s3 = s3_of(t)
            page = s3.list_objects_v2(Bucket="lf-both-" + t["account_id"],
                                      Prefix=self.prefix)
            for o in page.get("Contents", []):
                body = s3.get_object(Bucket="lf-both-" + t["account_id"],
                                     Key=o["Key"])["Body"].read()
                text = subprocess.run(["zstd", "-dcq"], input=body,
                                      stdout=subprocess.PIPE, check=True).stdout
                ids += [json.loads(l)["record_id"] for l in text.splitlines()]
        return ids

    def in_logs(self):
        ids = []
        for t in INFO["tenants"]:
            c = logs_of(t)
            group = "/%s/t-%s" % (self.prefix, t["account_id"])
            try:
                streams = c.describe_log_streams(logGroupName=group)["logStreams"]
            except c.exceptions.ResourceNotFoundException:
                continue
            for s in streams:
                token = None
                while True:
                    kw = {"logGroupName": group, "logStreamName": s["logStreamName"],
                          "startFromHead": True}
                    if token:
                        kw["nextToken"] = token
                    r = c.get_log_events(**kw)
                    ids += [json.loads(e["message"])["record_id"] for e in r["events"]]
                    if not r["events"] or r["nextForwardToken"] == token:
                        break
                    token = r["nextForwardToken"]
        return ids

    def wait(self, a, fn, want, timeout):
        t0 = time.time()
        while time.time() - t0 < timeout:
            if set(fn()) >= want:
                return time.time() - t0
            if a.proc.poll() is not None:
                self.fail("agent exited:\n" + a.log_text()[-3000:])
            time.sleep(0.5)
        self.fail("%s: not all records after %ss\n%s" % (fn.__name__, timeout,
                                                          a.log_text()[-3000:]))

    def test_both_receive_everything_and_one_down_does_not_delay_the_other(self):
        a = self.start()
        first = self.records(2000)
        a.emit_json(first)
        ids1 = {r["record_id"] for r in first}
        base_logs = self.wait(a, self.in_logs, ids1, 120)
        base_s3 = self.wait(a, self.in_s3, ids1, 120)

        # S3 down: CloudWatch goes on as before.
        H.proxy.add_fault(kind="error", status=503, service="s3", count=None)
        second = self.records(2000)
        a.emit_json(second)
        ids2 = {r["record_id"] for r in second}
        t_logs = self.wait(a, self.in_logs, ids1 | ids2, 60)
        self.assertFalse(ids2 & set(self.in_s3()), "S3 was supposed to be down")
        H.proxy.clear_faults()
        self.wait(a, self.in_s3, ids1 | ids2, 120)

        # CloudWatch Logs down: S3 goes on as before.
        H.proxy.add_fault(kind="error", status=503, service="logs", count=None)
        third = self.records(2000)
        a.emit_json(third)
        ids3 = {r["record_id"] for r in third}
        t_s3 = self.wait(a, self.in_s3, ids1 | ids2 | ids3, 60)
        self.assertFalse(ids3 & set(self.in_logs()), "Logs was supposed to be down")
        H.proxy.clear_faults()
        self.wait(a, self.in_logs, ids1 | ids2 | ids3, 120)
        self.assertEqual(a.stop(), 0)

        # Everything everywhere; in S3 exactly once.
        s3_ids = self.in_s3()
        self.assertEqual(len(s3_ids), len(set(s3_ids)))
        self.assertEqual(set(s3_ids), ids1 | ids2 | ids3)
        self.assertGreaterEqual(set(self.in_logs()), ids1 | ids2 | ids3)
        # "Not delayed": within a few seconds of the undisturbed times.
        self.assertLess(t_logs, base_logs + 10, (base_logs, t_logs))
        self.assertLess(t_s3, base_s3 + 10, (base_s3, t_s3))
        print("\n  time to all records: logs %.1f s (S3 down: %.1f s), "
              "s3 %.1f s (Logs down: %.1f s)" % (base_logs, t_logs, base_s3, t_s3))


if __name__ == "__main__":
    h.main()
