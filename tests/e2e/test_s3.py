"""S3 sink end to end: the real agent against moto with authentication on
(tests/aws harness, through the fault proxy), one bucket per tenant account,
each reached by AssumeRole with that tenant's ExternalId.

What is checked: every record lands exactly once, in one object, in its own
tenant's bucket only; kill -9 during uploads (multipart included) loses
nothing, duplicates nothing across objects and leaves no multipart upload
open; SSE, storage class, tags, Content-Type/-Encoding and the CRC32C
checksum are on the objects; a bucket that is missing keeps its records
staged (on disk, not in memory) without holding up the other tenants.

Sizes: 100,000 records in the exactly-once test and 4 kills in the kill -9
test by default; LF_LONG=1 runs the issue's 1,000,000 records and 10 kills.

moto 5.2.1 verifies S3 signatures against the *decoded* path, so any key
with a character that needs percent-encoding ('=' of the default
"tenant=..." layout, ':') is refused as SignatureDoesNotMatch, for boto3 as
much as for us; these tests use a key_template without them.
"""
import base64
import collections
import gzip
import json
import os
import random
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
import lfharness as h  # noqa: E402

sys.path.insert(0, os.path.join(h.SRC, "tests", "aws"))
from harness import Harness  # noqa: E402

LONG = bool(os.environ.get("LF_LONG"))
H = None
INFO = None
KEY = '${prefix}/${tenant_id}/${date}/${hour}/${hostname}-${first}.ndjson${ext}'


def extid(acct):
    return "lf-ext-" + acct


def bucket(acct):
    return "lf-archive-" + acct


def setUpModule():
    global H, INFO
    H = Harness(tenants=3, proxy=True)
    H.__enter__()
    INFO = H.info()
    # ExternalIds the sink can derive from the record (the proxy enforces
    # them; moto does not check them across accounts).
    H.proxy.configure({"external_ids": {t["role_arn"]: extid(t["account_id"])
                                        for t in INFO["tenants"]}})
    for t in INFO["tenants"]:
        s3_of(t["account_id"]).create_bucket(Bucket=bucket(t["account_id"]))


def tearDownModule():
    H.__exit__(None, None, None)


_clients = {}


def s3_of(acct):
    """boto3 S3 client inside tenant account acct (straight to moto)."""
    if acct not in _clients:
        t = next(t for t in INFO["tenants"] if t["account_id"] == acct)
        creds = H.assume(t, external_id=extid(acct), endpoint=H.moto_endpoint)
        _clients[acct] = H.client("s3", creds, endpoint=H.moto_endpoint, retries=3)
    return _clients[acct]


def crc32c(data):
    """Pure-Python CRC-32C (moto's botocore lacks the CRT for it)."""
    table = crc32c.table
    if table is None:
        table = crc32c.table = []
        for i in range(256):
            c = i
            for _ in range(8):
                c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
            table.append(c)
    c = 0xFFFFFFFF
    for b in data:
        c = table[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


crc32c.table = None


def decode(body, encoding):
    if encoding == "zstd":
        p = subprocess.run(["zstd", "-dcq"], input=body, stdout=subprocess.PIPE,
                           check=True)
        return p.stdout
    if encoding == "gzip":
        return gzip.decompress(body)
    return body


def records(n, start=0, big=0, seed=1):
    """n records round-robin over the tenants; big > 0 adds a prompt of
    about that many random base64 characters (poorly compressible)."""
    rnd = random.Random(seed + start)
    out = []
    tenants = INFO["tenants"]
    for i in range(start, start + n):
        acct = tenants[i % len(tenants)]["account_id"]
        r = h.record(i, tenant="t-" + acct)
        r["account_id"] = acct
        if big:
            r["prompt_text"] = base64.b64encode(
                rnd.getrandbits(big * 6).to_bytes(big * 6 // 8 + 1, "big")).decode()
        out.append(r)
    return out


class S3(h.TestCase):
    def setUp(self):
        super().setUp()
        H.proxy.clear_faults()
        self.prefix = "%s-%d" % (self._testMethodName.replace("_", "-"),
                                 int(time.time() * 1000))

    def sink(self, name="arch", **kw):
        conf = {
            "bucket": "lf-archive-${account_id}",
            "region": INFO["region"],
            "endpoint": INFO["endpoint"],
            "path_style": True,
            "role_arn": "arn:aws:iam::${account_id}:role/LogWriter",
            "external_id": "lf-ext-${account_id}",
            "prefix": self.prefix,
            "key_template": KEY,
            "roll_age": "2s",
            "batch_max_records": 2000,
            "cursor_commit_interval": "100ms",
            "retry_interval": "200ms",
            "retry_interval_max": "2s",
        }
        conf.update(kw)
        out = []
        for k, v in conf.items():
            if isinstance(v, bool):
                out.append("%s = %s;" % (k, "true" if v else "false"))
            elif isinstance(v, int):
                out.append("%s = %d;" % (k, v))
            elif isinstance(v, list):
                out.append("%s = [%s];" % (k, ", ".join('"%s"' % x for x in v)))
            else:
                out.append('%s = "%s";' % (k, v))
        return '{ name = "%s"; type = "s3"; %s }' % (name, " ".join(out))

    def s3_agent(self, *sinks, log_level="info"):
        a = self.agent(sinks=", ".join(sinks), log_level=log_level,
                       extra='aws: { region = "%s"; sts_endpoint = "%s"; };'
                       % (INFO["region"], INFO["endpoint"]))
        return a

    def start(self, a):
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update(AWS_ACCESS_KEY_ID=INFO["ops"]["access_key_id"],
                   AWS_SECRET_ACCESS_KEY=INFO["ops"]["secret_access_key"],
                   NO_PROXY="127.0.0.1,localhost")
        a.logf = open(a.log_path, "ab")
        a.proc = subprocess.Popen(a.cmd("run"), stdout=a.logf,
                                  stderr=subprocess.STDOUT, env=env)
        return a

    def objects(self, acct, prefix=None):
        """{key: (head, [records])} under our prefix in acct's bucket."""
        s3 = s3_of(acct)
        out = {}
        # (A Prefix with '/' would trip moto's signature check, see above.)
        want = (prefix or self.prefix) + "/"
        kw = {"Bucket": bucket(acct), "Prefix": want[:-1]}
        while True:
            page = s3.list_objects_v2(**kw)
            for o in page.get("Contents", []):
                if not o["Key"].startswith(want):
                    continue
                obj = s3.get_object(Bucket=bucket(acct), Key=o["Key"])
                body = obj["Body"].read()
                text = decode(body, obj.get("ContentEncoding"))
                recs = [json.loads(l) for l in text.splitlines()]
                out[o["Key"]] = (obj, recs, body)
            if not page.get("IsTruncated"):
                return out
            kw["ContinuationToken"] = page["NextContinuationToken"]

    def collect(self, prefix=None):
        """Every record found, as (account of the bucket, key, record)."""
        got = []
        for t in INFO["tenants"]:
            for key, (_, recs, _) in self.objects(t["account_id"], prefix).items():
                got.extend((t["account_id"], key, r) for r in recs)
        return got

    def wait_records(self, a, want_ids, timeout=300, prefix=None):
        deadline = time.time() + timeout
        got = []
        while time.time() < deadline:
            got = self.collect(prefix)
            if {r["record_id"] for _, _, r in got} >= want_ids:
                return got
            if a.proc and a.proc.poll() is not None:
                raise AssertionError("agent exited with %s:\n%s" %
                                     (a.proc.returncode, a.log_text()[-4000:]))
            time.sleep(1)
        have = {r["record_id"] for _, _, r in got}
        raise AssertionError("%d of %d records in S3 after %ss\n%s" % (
            len(have & want_ids), len(want_ids), timeout, a.log_text()[-4000:]))

    def assert_exactly_once(self, got, want):
        per_id = collections.defaultdict(set)
        count = collections.Counter()
        for acct, key, r in got:
            per_id[r["record_id"]].add(key)
            count[r["record_id"]] += 1
            # Only ever in its own tenant's bucket, under its own tenant.
            self.assertEqual(r["account_id"], acct, "record in another tenant's bucket")
            self.assertIn("/t-%s/" % acct, key)
        self.assertEqual(set(per_id), {r["record_id"] for r in want})
        dup_objects = [i for i, keys in per_id.items() if len(keys) > 1]
        self.assertEqual(dup_objects, [], "records in two different objects")
        self.assertEqual(max(count.values()), 1, "a record twice in one object")

    def assert_no_open_uploads(self):
        for t in INFO["tenants"]:
            r = s3_of(t["account_id"]).list_multipart_uploads(
                Bucket=bucket(t["account_id"]))
            mine = [u for u in r.get("Uploads", [])
                    if u["Key"].startswith(self.prefix + "/")]
            self.assertEqual(mine, [], "multipart upload left open")

    def assert_ops_account_untouched(self):
        ops = H.client("s3", endpoint=H.moto_endpoint)
        names = [b["Name"] for b in ops.list_buckets().get("Buckets", [])]
        self.assertEqual(names, [], "something landed in the ops account")

    # ------------------------------------------------------------------
    def test_tenants_exactly_once(self):
        n = 1_000_000 if LONG else 100_000
        want = records(n)
        # Unroutable: an account id that is no account, and none at all.
        bad = h.record(n + 1, tenant="t-bad")
        bad["account_id"] = "12345"
        none = h.record(n + 2, tenant="t-none")
        none["account_id"] = ""
        a = self.s3_agent(self.sink(batch_max_records=4096))
        t0 = time.time()
        for i in range(0, n, 250_000):
            a.emit_json(want[i:i + 250_000])
        a.emit_json([bad, none])
        self.start(a)
        got = self.wait_records(a, {r["record_id"] for r in want},
                                timeout=1800 if LONG else 300)
        secs = time.time() - t0
        self.assertEqual(a.stop(), 0)
        self.assert_exactly_once(got, want)
        self.assert_no_open_uploads()
        self.assert_ops_account_untouched()
        # The two unroutable records are dead letters with the reason.
        p = subprocess.run(a.cmd("dump", "--dead-letter"), stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE)
        dl = [json.loads(l) for l in p.stdout.splitlines()]
        self.assertEqual({d["record"]["record_id"] for d in dl},
                         {bad["record_id"], none["record_id"]})
        self.assertTrue(all("role_arn" in d["reason"] or "account_id" in d["reason"]
                            for d in dl), dl)
        self.assert_no_content_in_log(a, want)
        raw = comp = objs = 0
        for t in INFO["tenants"]:
            for _, (obj, recs, body) in self.objects(t["account_id"]).items():
                objs += 1
                comp += len(body)
                raw += len(decode(body, obj.get("ContentEncoding")))
        print("\n  %d records -> %d objects, %.1f MB NDJSON -> %.1f MB zstd "
              "(ratio %.1f), %.1f s end to end" % (n, objs, raw / 1e6, comp / 1e6,
                                                   raw / comp, secs))

    def test_kill9_during_uploads(self):
        # Each round appends more records (a writer while the agent runs),
        # then kill -9: on even rounds as soon as a multipart upload is in
        # flight (UploadPart is slowed down by the proxy), on odd rounds at
        # a random moment (staging, rolling, PutObject, ...).
        kills = 10 if LONG else 4
        n = 6_000 * kills
        want = records(n, big=6000, seed=7)
        a = self.s3_agent(self.sink(roll_bytes="12MB", multipart_threshold="5MB",
                                    part_size="5MB", roll_age="3s",
                                    batch_max_records=500))
        H.proxy.add_fault(kind="delay", delay=0.3, service="s3",
                          operation="UploadPart", count=None)
        H.proxy.reset_stats()
        rnd = random.Random(11)
        per = n // kills
        in_flight_kills = 0

        def mpu_in_flight():
            r = H.proxy.stats()["requests"]
            return (r.get("s3:CreateMultipartUpload", 0) -
                    r.get("s3:CompleteMultipartUpload", 0) -
                    r.get("s3:AbortMultipartUpload", 0)) > 0

        for k in range(kills):
            self.start(a)
            a.emit_json(want[k * per:(k + 1) * per])
            if k % 2 == 0:
                deadline = time.time() + 8
                while time.time() < deadline and not mpu_in_flight():
                    time.sleep(0.02)
                in_flight_kills += mpu_in_flight()
                time.sleep(rnd.uniform(0, 0.3))
            else:
                time.sleep(rnd.uniform(0.2, 3.0))
            a.kill9()
        H.proxy.clear_faults()
        self.start(a)
        got = self.wait_records(a, {r["record_id"] for r in want}, timeout=600)
        self.assertEqual(a.stop(), 0)
        self.assert_exactly_once(got, want)
        self.assert_no_open_uploads()
        st = H.proxy.stats()["requests"]
        self.assertGreater(st.get("s3:CompleteMultipartUpload", 0), 0, st)
        self.assertGreater(in_flight_kills, 0, "no kill landed in a multipart upload")
        staged = os.listdir(os.path.join(a.state, "sinks", "arch"))
        self.assertEqual([f for f in staged if f.endswith((".stage", ".mpu"))], [])
        print("\n  %d records, %d kills (%d with a multipart upload in flight); "
              "requests: %s" % (n, kills, in_flight_kills,
                                {k: v for k, v in st.items() if k.startswith("s3:")}))

    def test_object_headers_checksums_and_encodings(self):
        # Two sinks on one agent: gzip + MD5 + SSE-S3, and zstd + CRC32C +
        # SSE-KMS with a key id; both with a storage class and tags.
        want = records(3000)
        pa, pb = self.prefix + "-a", self.prefix + "-b"
        a = self.s3_agent(
            self.sink("ga", prefix=pa, compression="gzip", checksum="md5",
                      sse="AES256", storage_class="STANDARD_IA",
                      tags=["retention=90d", "source=logferry"]),
            self.sink("zb", prefix=pb, compression="zstd", checksum="crc32c",
                      sse="aws:kms", sse_kms_key_id="alias/tenant-logs",
                      storage_class="GLACIER_IR", tags=["retention=1y"]))
        a.emit_json(want)
        self.start(a)
        ids = {r["record_id"] for r in want}
        self.assert_exactly_once(self.wait_records(a, ids, prefix=pa), want)
        self.assert_exactly_once(self.wait_records(a, ids, prefix=pb), want)
        self.assertEqual(a.stop(), 0)
        for t in INFO["tenants"]:
            acct = t["account_id"]
            s3 = s3_of(acct)
            for prefix, enc in ((pa, "gzip"), (pb, "zstd")):
                objs = self.objects(acct, prefix)
                self.assertTrue(objs)
                for key, (obj, _, body) in objs.items():
                    hd = s3.head_object(Bucket=bucket(acct), Key=key,
                                        ChecksumMode="ENABLED")
                    tags = {x["Key"]: x["Value"] for x in s3.get_object_tagging(
                        Bucket=bucket(acct), Key=key)["TagSet"]}
                    self.assertEqual(hd["ContentType"], "application/x-ndjson")
                    self.assertEqual(hd["ContentEncoding"], enc)
                    self.assertTrue(key.endswith(".ndjson" + (".gz" if enc == "gzip" else ".zst")))
                    if enc == "gzip":
                        self.assertEqual(hd["ServerSideEncryption"], "AES256")
                        self.assertEqual(hd["StorageClass"], "STANDARD_IA")
                        self.assertEqual(tags, {"retention": "90d", "source": "logferry"})
                    else:
                        self.assertEqual(hd["ServerSideEncryption"], "aws:kms")
                        self.assertEqual(hd["SSEKMSKeyId"], "alias/tenant-logs")
                        self.assertEqual(hd["StorageClass"], "GLACIER_IR")
                        self.assertEqual(tags, {"retention": "1y"})
                        self.assertEqual(hd["ChecksumCRC32C"], base64.b64encode(
                            crc32c(body).to_bytes(4, "big")).decode())
                    self.assertEqual(int(hd["Metadata"]["logferry-records"]),
                                     len(self.objects(acct, prefix)[key][1]))

    def test_missing_bucket_stays_staged_others_flow(self):
        # Tenant 2's records go to a bucket that does not exist yet: they
        # wait on disk (NoSuchBucket is permanent: slow retries) while the
        # other tenants' objects arrive; once the bucket exists they follow.
        tenants = INFO["tenants"]
        want = records(3000)
        a = self.s3_agent(self.sink(bucket="lf-late-${account_id}",
                                    permanent_retry_interval="1s"),
                          log_level="debug")
        late = tenants[2]["account_id"]
        for t in tenants[:2]:
            s3_of(t["account_id"]).create_bucket(Bucket="lf-late-" + t["account_id"])
        a.emit_json(want)
        self.start(a)
        ids_ok = {r["record_id"] for r in want if r["account_id"] != late}
        deadline = time.time() + 120
        while time.time() < deadline:
            got = set()
            for t in tenants[:2]:
                for _, (_, recs, _) in self.objects_in("lf-late-", t["account_id"]).items():
                    got |= {r["record_id"] for r in recs}
            if got >= ids_ok:
                break
            time.sleep(1)
        self.assertEqual(got, ids_ok)
        staged_dir = os.path.join(a.state, "sinks", "arch")
        self.assertTrue([f for f in os.listdir(staged_dir) if f.endswith(".stage")])
        text = a.log_text()
        self.assertIn("NoSuchBucket", text)
        self.assertIn("bucket=lf-late-%s" % late, text)
        self.assertIn("role=arn:aws:iam::%s:role/LogWriter" % late, text)
        self.assertNotIn(extid(late), text)
        # The bucket appears: the staged records follow, exactly once.
        s3_of(late).create_bucket(Bucket="lf-late-" + late)
        deadline = time.time() + 60
        mine = {r["record_id"] for r in want if r["account_id"] == late}
        while time.time() < deadline:
            objs = self.objects_in("lf-late-", late)
            got_late = [r["record_id"] for _, (_, recs, _) in objs.items() for r in recs]
            if set(got_late) >= mine:
                break
            time.sleep(0.5)
        self.assertEqual(sorted(got_late), sorted(mine))
        self.assertEqual(a.stop(), 0)
        self.assert_no_content_in_log(a, want)

    def objects_in(self, bprefix, acct):
        s3 = s3_of(acct)
        out = {}
        page = s3.list_objects_v2(Bucket=bprefix + acct, Prefix=self.prefix)
        for o in page.get("Contents", []):
            if not o["Key"].startswith(self.prefix + "/"):
                continue
            obj = s3.get_object(Bucket=bprefix + acct, Key=o["Key"])
            body = obj["Body"].read()
            out[o["Key"]] = (obj, [json.loads(l) for l in
                                   decode(body, obj.get("ContentEncoding")).splitlines()], body)
        return out

    def test_throttling_and_resets_lose_nothing(self):
        want = records(20_000)
        a = self.s3_agent(self.sink(roll_records=1000, roll_age="1s"))
        H.proxy.add_fault(kind="throttle", service="s3", operation="PutObject",
                          probability=0.4, count=None, seconds=20)
        H.proxy.add_fault(kind="reset", service="s3", operation="PutObject",
                          probability=0.1, count=None, seconds=20)
        H.proxy.reset_stats()
        a.emit_json(want)
        self.start(a)
        got = self.wait_records(a, {r["record_id"] for r in want}, timeout=180)
        self.assertEqual(a.stop(), 0)
        self.assert_exactly_once(got, want)
        st = H.proxy.stats()
        self.assertGreater(sum(st["faults_served"].values()), 0)
        # roll_records: every object holds at most 1000 records.
        for t in INFO["tenants"]:
            for key, (_, recs, _) in self.objects(t["account_id"]).items():
                self.assertLessEqual(len(recs), 1000, key)


if __name__ == "__main__":
    h.main()
