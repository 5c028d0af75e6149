#!/usr/bin/env python3
"""Self-test of the AWS test harness: moto with authentication on + faultproxy.

Why this exists: every AWS test of logferry trusts these two tools to refuse
what AWS refuses, keep accounts apart and fail exactly when asked. This file
proves each of those claims with boto3 (and raw HTTP where the bytes matter),
so a moto upgrade that changes behaviour shows up here first.

Run: python3 tests/aws/test_harness_selftest.py   (about 20 s, no network)
"""
import http.client
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.parse
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import harness  # noqa: E402
from botocore.auth import SigV4Auth  # noqa: E402
from botocore.awsrequest import AWSRequest  # noqa: E402
from botocore.credentials import ContainerProvider, Credentials  # noqa: E402
from botocore.exceptions import ClientError  # noqa: E402
from botocore.parsers import ResponseParserError  # noqa: E402
from botocore.utils import InstanceMetadataFetcher  # noqa: E402

H = None  # the shared Harness
P = None  # its proxy
NOW_MS = lambda: int(time.time() * 1000)  # noqa: E731


def setUpModule():
    global H, P
    H = harness.Harness(tenants=3, proxy=True).start()
    P = H.proxy


def tearDownModule():
    pid = H.proc.pid
    H.stop()
    assert not _alive(pid), "moto survived Harness.stop()"


def _alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[1][0] not in "ZX"
    except (FileNotFoundError, IndexError):
        return False


def code(e):
    return e.response["Error"]["Code"], e.response["ResponseMetadata"]["HTTPStatusCode"]


def raw(endpoint, op, body=b"{}", creds=None, conn=None):
    """Signed CloudWatch Logs call over http.client; returns (conn, response)."""
    creds = creds or H.ops
    req = AWSRequest("POST", endpoint + "/", data=body, headers={
        "Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": "Logs_20140328." + op})
    SigV4Auth(Credentials(creds["access_key_id"], creds["secret_access_key"], creds.get("session_token")),
              "logs", H.region).add_auth(req)
    u = urllib.parse.urlsplit(endpoint)
    conn = conn or http.client.HTTPConnection(u.hostname, u.port, timeout=10)
    conn.request("POST", "/", body=body, headers=dict(req.headers.items()))
    return conn, conn.getresponse()


def call(endpoint, op, body=b"{}", creds=None):
    """raw() that reads the answer and closes: (response, body)."""
    conn, r = raw(endpoint, op, body, creds)
    data = r.read()
    conn.close()
    return r, data


def get(url, headers=None, method="GET"):
    req = urllib.request.Request(url, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


class Base(unittest.TestCase):
    def setUp(self):
        P.clear_faults()
        P.configure({"assume_role_ttl": None, "credentials_ttl": None})

    def tenant(self, i):
        return H.assume(i)

    def logs(self, creds=None, **kw):
        return H.client("logs", creds=creds, **kw)


class Auth(Base):
    def test_bad_secret_and_unknown_key_are_refused(self):
        bad = dict(H.ops, secret_access_key="wrong" * 8)
        unknown = {"access_key_id": "AKIAUNKNOWNUNKNOWN00", "secret_access_key": "x"}
        for ep in (H.moto_endpoint, H.endpoint):
            with self.subTest(endpoint=ep):
                with self.assertRaises(ClientError) as cm:
                    H.client("sts", bad, ep).get_caller_identity()
                self.assertEqual(code(cm.exception), ("SignatureDoesNotMatch", 403))
                with self.assertRaises(ClientError) as cm:
                    H.client("s3", bad, ep).list_buckets()
                self.assertEqual(code(cm.exception)[0], "SignatureDoesNotMatch")
                with self.assertRaises(ClientError) as cm:
                    H.client("sts", unknown, ep).get_caller_identity()
                self.assertEqual(code(cm.exception), ("InvalidClientTokenId", 403))
                with self.assertRaises(ClientError) as cm:
                    H.client("s3", unknown, ep).list_buckets()
                self.assertEqual(code(cm.exception)[0], "InvalidAccessKeyId")
                self.assertEqual(H.client("sts", endpoint=ep).get_caller_identity()["Arn"], H.ops["user_arn"])

    def test_logs_auth_errors_are_xml_403_and_moto_closes_connections(self):
        r, body = call(H.moto_endpoint, "DescribeLogGroups", creds=dict(H.ops, secret_access_key="bad"))
        self.assertEqual(r.status, 403)
        self.assertIn(b"<Code>SignatureDoesNotMatch</Code>", body)  # XML, not JSON, unlike AWS
        self.assertEqual(r.getheader("Connection"), "close")
        r, _ = call(H.moto_endpoint, "DescribeLogGroups")
        self.assertEqual((r.status, r.getheader("Connection")), (200, "close"))

    def test_proxy_can_reshape_logs_auth_errors_like_aws(self):
        P.configure({"logs_json_auth_errors": True})
        try:
            for creds, expect in ((dict(H.ops, secret_access_key="bad"), "InvalidSignatureException"),
                                  ({"access_key_id": "AKIAUNKNOWNUNKNOWN00", "secret_access_key": "x"}, "UnrecognizedClientException")):
                with self.assertRaises(ClientError) as cm:
                    self.logs(creds).describe_log_groups()
                self.assertEqual(code(cm.exception), (expect, 400))
        finally:
            P.configure({"logs_json_auth_errors": False})

    def test_proxy_keeps_client_connection_alive(self):
        conn = None
        socks = set()
        for _ in range(3):
            conn, r = raw(H.endpoint, "DescribeLogGroups", conn=conn)
            r.read()
            self.assertEqual(r.status, 200)
            self.assertIsNone(r.getheader("Connection"))
            socks.add(id(conn.sock))
        self.assertEqual(len(socks), 1)
        conn.close()

    def test_absolute_form_http_proxy_mode(self):
        before = P.stats()["requests"].get("sts:GetCallerIdentity", 0)
        sts = H.client("sts", endpoint=H.moto_endpoint, proxies={"http": H.endpoint})
        self.assertEqual(sts.get_caller_identity()["Arn"], H.ops["user_arn"])
        self.assertEqual(P.stats()["requests"]["sts:GetCallerIdentity"], before + 1)


class Accounts(Base):
    def test_external_id_checked_by_proxy_not_by_moto(self):
        t = H.tenants[0]
        creds = H.assume(0)
        arn = H.client("sts", creds).get_caller_identity()["Arn"]
        self.assertEqual(arn, f"arn:aws:sts::{t['account_id']}:assumed-role/LogWriter/logferry-test")
        denied = P.stats()["external_id_denied"]
        sts = H.client("sts")
        for ext in ("wrong-external-id", None):
            kw = {"ExternalId": ext} if ext else {}
            with self.assertRaises(ClientError) as cm:
                sts.assume_role(RoleArn=t["role_arn"], RoleSessionName="x-test", **kw)
            self.assertEqual(code(cm.exception), ("AccessDenied", 403))
        self.assertEqual(P.stats()["external_id_denied"], denied + 2)
        # moto alone lets a wrong ExternalId through on a cross-account AssumeRole
        H.client("sts", endpoint=H.moto_endpoint).assume_role(
            RoleArn=t["role_arn"], RoleSessionName="x-test", ExternalId="wrong-external-id")

    def test_resources_land_in_the_assumed_account_only(self):
        names = {}
        for i in (0, 1):
            acct = H.tenants[i]["account_id"]
            c = self.tenant(i)
            H.client("logs", c).create_log_group(logGroupName=f"iso-{acct}")
            H.client("s3", c).create_bucket(Bucket=f"iso-{acct}")
            names[i] = (c, f"iso-{acct}")
        for i, (c, name) in names.items():
            groups = [g["logGroupName"] for g in H.client("logs", c).describe_log_groups(logGroupNamePrefix="iso-")["logGroups"]]
            buckets = [b["Name"] for b in H.client("s3", c).list_buckets()["Buckets"] if b["Name"].startswith("iso-")]
            self.assertEqual((groups, buckets), ([name], [name]))
        self.assertEqual(H.client("logs").describe_log_groups(logGroupNamePrefix="iso-")["logGroups"], [])
        self.assertFalse([b for b in H.client("s3").list_buckets()["Buckets"] if b["Name"].startswith("iso-")])


class Faults(Base):
    def test_throttle_next_n_per_service(self):
        P.add_fault(kind="throttle", service="logs", operation="DescribeLogGroups", count=2)
        lg = self.logs()
        for _ in range(2):
            with self.assertRaises(ClientError) as cm:
                lg.describe_log_groups()
            self.assertEqual(code(cm.exception), ("ThrottlingException", 400))
        lg.describe_log_groups()
        P.add_fault(kind="throttle", service="s3")
        with self.assertRaises(ClientError) as cm:
            H.client("s3").list_buckets()
        self.assertEqual(code(cm.exception), ("SlowDown", 503))
        P.add_fault(kind="throttle", service="sts")
        with self.assertRaises(ClientError) as cm:
            H.client("sts").get_caller_identity()
        self.assertEqual(code(cm.exception), ("Throttling", 400))

    def test_5xx(self):
        for status, service, expect in ((500, "logs", "ServiceUnavailableException"), (503, "logs", "ServiceUnavailableException"),
                                        (500, "s3", "InternalError"), (503, "s3", "ServiceUnavailable"),
                                        (500, "sts", "InternalFailure")):
            P.add_fault(kind="error", status=status, service=service)
            call = {"logs": lambda: self.logs().describe_log_groups(), "s3": lambda: H.client("s3").list_buckets(),
                    "sts": lambda: H.client("sts").get_caller_identity()}[service]
            with self.assertRaises(ClientError) as cm:
                call()
            self.assertEqual(code(cm.exception), (expect, status))

    def test_expired_token_answers(self):
        for service, expect in (("logs", ("ExpiredTokenException", 400)), ("s3", ("ExpiredToken", 400)),
                                ("sts", ("ExpiredToken", 403))):
            P.add_fault(kind="expired", service=service)
            call = {"logs": lambda: self.logs().describe_log_groups(), "s3": lambda: H.client("s3").list_buckets(),
                    "sts": lambda: H.client("sts").get_caller_identity()}[service]
            with self.assertRaises(ClientError) as cm:
                call()
            self.assertEqual(code(cm.exception), expect)

    def test_delay(self):
        P.add_fault(kind="delay", delay=0.5, service="logs")
        t = time.monotonic()
        self.logs().describe_log_groups()
        self.assertGreaterEqual(time.monotonic() - t, 0.5)

    def test_reset_mid_body_after_the_call_took_effect(self):
        P.add_fault(kind="reset", operation="DescribeLogGroups")
        conn, r = raw(H.endpoint, "DescribeLogGroups")
        self.assertEqual(r.status, 200)
        with self.assertRaises((http.client.IncompleteRead, ConnectionError)):
            r.read()
        conn.close()
        c = self.tenant(2)
        P.add_fault(kind="reset", operation="CreateLogGroup")  # moto answers no body: cut in the status line
        with self.assertRaises(Exception) as cm:
            H.client("logs", c).create_log_group(logGroupName="reset-me")
        self.assertNotIsInstance(cm.exception, ClientError)
        groups = H.client("logs", c).describe_log_groups(logGroupNamePrefix="reset-me")["logGroups"]
        self.assertEqual(len(groups), 1)  # forwarded: the client must cope with "done but not told"

    def test_malformed_bodies(self):
        _, good = call(H.endpoint, "DescribeLogGroups")
        for style in ("truncated", "garbage", "empty"):
            P.add_fault(kind="malformed", body=style, operation="DescribeLogGroups")
            r, body = call(H.endpoint, "DescribeLogGroups")
            self.assertEqual(r.status, 200)
            self.assertNotEqual(body, good)
            with self.assertRaises(ValueError):
                json.loads(body)

    def test_match_by_account_and_probability_and_window(self):
        a, b = self.tenant(0), self.tenant(1)
        P.add_fault(kind="throttle", account=H.tenants[0]["account_id"], count=None, seconds=30)
        with self.assertRaises(ClientError):
            H.client("logs", a).describe_log_groups()
        H.client("logs", b).describe_log_groups()
        P.clear_faults()
        P.add_fault(kind="throttle", service="logs", count=None, probability=0.5, seconds=30)
        lg, hits = self.logs(), 0
        for _ in range(40):
            try:
                lg.describe_log_groups()
            except ClientError:
                hits += 1
        self.assertTrue(5 <= hits <= 35, hits)
        P.clear_faults()
        P.add_fault(kind="throttle", service="logs", count=None, seconds=0.3)
        self.assertRaises(ClientError, lg.describe_log_groups)
        time.sleep(0.4)
        lg.describe_log_groups()  # window over
        self.assertEqual(P.faults(), [])

    def test_admin_api_over_http(self):
        admin = P.describe()["admin"]
        req = urllib.request.Request(admin + "/faults", method="POST", data=json.dumps(
            [{"kind": "throttle", "service": "logs"}, {"kind": "error", "status": 503, "service": "s3"}]).encode())
        ids = json.load(urllib.request.urlopen(req))["ids"]
        self.assertEqual(len(ids), 2)
        self.assertEqual([f["id"] for f in json.load(urllib.request.urlopen(admin + "/faults"))], ids)
        urllib.request.urlopen(urllib.request.Request(admin + "/faults", method="DELETE"))
        self.assertEqual(json.load(urllib.request.urlopen(admin + "/faults")), [])
        self.assertIn("requests", json.load(urllib.request.urlopen(admin + "/stats")))
        self.assertEqual(get(admin + "/faults", method="PUT")[0], 404)


class Limits(Base):
    @classmethod
    def setUpClass(cls):
        cls.creds = H.assume(2)
        lg = H.client("logs", cls.creds)
        lg.create_log_group(logGroupName="limits")
        lg.create_log_stream(logGroupName="limits", logStreamName="s")

    def put(self, events):
        lg = H.client("logs", self.creds, parameter_validation=False)
        return lg.put_log_events(logGroupName="limits", logStreamName="s", logEvents=events)

    def test_within_limits_at_the_boundaries(self):
        P.reset_stats()
        now = NOW_MS()
        self.put([{"timestamp": now, "message": "x"}] * 10_000)
        self.put([{"timestamp": now, "message": "y" * 1_048_550}])
        self.put([{"timestamp": now, "message": "z" * 524_262}] * 2)  # exactly 1,048,576
        self.put([{"timestamp": now - 86_400_000, "message": "a"}, {"timestamp": now, "message": "b"}])
        st = P.stats()
        self.assertEqual(st["violation_count"], 0)
        self.assertEqual(st["put_log_events"]["max_bytes"], 1_048_576)
        self.assertEqual(st["put_log_events"]["max_events"], 10_000)

    def test_each_violation_is_answered_like_aws_and_recorded(self):
        now = NOW_MS()
        cases = {
            "event_count": [{"timestamp": now, "message": "x"}] * 10_001,
            "event_size": [{"timestamp": now, "message": "x" * 1_048_551}],
            "batch_size": [{"timestamp": now, "message": "x" * 600_000}] * 2,
            "order": [{"timestamp": now, "message": "a"}, {"timestamp": now - 1, "message": "b"}],
            "span": [{"timestamp": now - 86_400_001, "message": "a"}, {"timestamp": now, "message": "b"}],
            "empty_message": [{"timestamp": now, "message": ""}],
        }
        cases["event_count_zero"] = []
        for rule, events in cases.items():
            with self.subTest(rule=rule):
                P.reset_stats()
                with self.assertRaises(ClientError) as cm:
                    self.put(events)
                self.assertEqual(code(cm.exception), ("InvalidParameterException", 400))
                st = P.stats()
                self.assertIn(rule.replace("_zero", ""), [v["rule"] for v in st["violations"]])
                self.assertEqual(st["violations"][0]["account"], H.tenants[2]["account_id"])
                self.assertEqual(st["put_log_events"]["calls"], 0)  # never reached moto
        r, body = call(H.endpoint, "PutLogEvents", json.dumps(
            {"logGroupName": "limits", "logStreamName": "s", "logEvents": cases["order"]}).encode(), creds=self.creds)
        self.assertEqual((r.status, r.getheader("Content-Type")), (400, "application/x-amz-json-1.1"))
        self.assertEqual(json.loads(body)["__type"], "InvalidParameterException")


class Credentials_(Base):
    def test_imdsv2(self):
        ep = P.describe()["imds_endpoint"]
        self.assertEqual(get(ep + "/latest/api/token", method="PUT")[0], 400)  # no TTL header
        self.assertEqual(get(ep + "/latest/meta-data/iam/security-credentials/")[0], 401)  # IMDSv1 off
        status, token = get(ep + "/latest/api/token", {"X-aws-ec2-metadata-token-ttl-seconds": "60"}, "PUT")
        self.assertEqual(status, 200)
        self.assertEqual(get(ep + "/latest/meta-data/iam/security-credentials/",
                             {"X-aws-ec2-metadata-token": token.decode()}), (200, b"InstanceRole"))
        c = InstanceMetadataFetcher(timeout=2, num_attempts=1, base_url=ep).retrieve_iam_role_credentials()
        self.assertEqual(c["role_name"], "InstanceRole")
        creds = {"access_key_id": c["access_key"], "secret_access_key": c["secret_key"], "session_token": c["token"]}
        arn = H.client("sts", creds).get_caller_identity()["Arn"]
        self.assertIn(":assumed-role/InstanceRole/", arn)

    def test_container_credentials(self):
        d = P.describe()
        self.assertEqual(get(d["container_credentials_full_uri"])[0], 401)
        self.assertEqual(get(d["container_credentials_full_uri"], {"Authorization": "wrong"})[0], 401)
        c = ContainerProvider(environ={"AWS_CONTAINER_CREDENTIALS_FULL_URI": d["container_credentials_full_uri"],
                                       "AWS_CONTAINER_AUTHORIZATION_TOKEN": d["container_authorization_token"]}).load()
        f = c.get_frozen_credentials()
        creds = {"access_key_id": f.access_key, "secret_access_key": f.secret_key, "session_token": f.token}
        self.assertIn(":assumed-role/InstanceRole/", H.client("sts", creds).get_caller_identity()["Arn"])

    def test_web_identity(self):
        from botocore import UNSIGNED
        kw = dict(RoleArn=H.instance["role_arn"], RoleSessionName="web", WebIdentityToken="eyJhbGciOi.x.y")
        r = H.client("sts", endpoint=H.endpoint, signature_version=UNSIGNED).assume_role_with_web_identity(**kw)["Credentials"]
        creds = {"access_key_id": r["AccessKeyId"], "secret_access_key": r["SecretAccessKey"], "session_token": r["SessionToken"]}
        self.assertIn(":assumed-role/InstanceRole/", H.client("sts", creds).get_caller_identity()["Arn"])
        with self.assertRaises(ResponseParserError) as cm:  # moto alone answers an HTML 500 with auth on
            H.client("sts", endpoint=H.moto_endpoint, signature_version=UNSIGNED).assume_role_with_web_identity(**kw)
        self.assertIn("500 Internal Server Error", str(cm.exception))

    def test_short_lived_assume_role_credentials(self):
        P.configure({"assume_role_ttl": 1.5})
        c = H.assume(0)
        left = time.mktime(time.strptime(c["expiration"][:19], "%Y-%m-%dT%H:%M:%S")) - time.mktime(time.gmtime())
        self.assertTrue(0 <= left <= 2, left)
        H.client("logs", c).describe_log_groups()
        time.sleep(1.7)
        for service, call, expect in (("logs", "describe_log_groups", "ExpiredTokenException"),
                                      ("s3", "list_buckets", "ExpiredToken"), ("sts", "get_caller_identity", "ExpiredToken")):
            with self.assertRaises(ClientError) as cm:
                getattr(H.client(service, c), call)()
            self.assertEqual(code(cm.exception)[0], expect)
        P.configure({"assume_role_ttl": None})
        H.client("logs", H.assume(0)).describe_log_groups()  # a fresh AssumeRole works
        self.assertGreaterEqual(P.stats()["expired_credentials_served"], 3)

    def test_served_credentials_expire_until_fetched_again(self):
        P.configure({"credentials_ttl": 1})
        d = P.describe()
        env = {"AWS_CONTAINER_CREDENTIALS_FULL_URI": d["container_credentials_full_uri"],
               "AWS_CONTAINER_AUTHORIZATION_TOKEN": d["container_authorization_token"]}
        f = ContainerProvider(environ=env).load().get_frozen_credentials()
        creds = {"access_key_id": f.access_key, "secret_access_key": f.secret_key, "session_token": f.token}
        H.client("sts", creds).get_caller_identity()
        time.sleep(1.2)
        with self.assertRaises(ClientError) as cm:
            H.client("sts", creds).get_caller_identity()
        self.assertEqual(code(cm.exception)[0], "ExpiredToken")
        ContainerProvider(environ=env).load()
        H.client("sts", creds).get_caller_identity()  # re-fetched: valid again
        P.configure({"credentials_ttl": None})
        ContainerProvider(environ=env).load()


class Stats(Base):
    def test_counts_rates_and_faults(self):
        P.reset_stats()
        P.add_fault(kind="throttle", service="logs", operation="DescribeLogGroups", count=None, seconds=30)
        lg, n, t = self.logs(), 0, time.monotonic()
        while time.monotonic() - t < 0.8:
            with self.assertRaises(ClientError):
                lg.describe_log_groups()
            n += 1
        P.clear_faults()
        st = P.stats()
        self.assertEqual(st["requests"]["logs:DescribeLogGroups"], n)
        self.assertEqual(st["faults_served"]["throttle"], n)
        self.assertEqual(st["status"]["400"], n)
        self.assertEqual(sum(c for _, c in st["per_second"]), n)
        self.assertEqual(st["rate_peak"]["logs:DescribeLogGroups"], max(c for _, c in st["per_second"]))
        self.assertEqual(st["by_account"], {harness.OPS_ACCOUNT: n})


class Cli(unittest.TestCase):
    def run_cli(self, tmp):
        out = os.path.join(tmp, "aws.json")
        p = subprocess.Popen([sys.executable, os.path.join(HERE, "harness.py"), "--tenants", "2", "--proxy",
                              "--json-out", out], stdout=subprocess.DEVNULL, start_new_session=True)
        for _ in range(300):
            if os.path.exists(out) or p.poll() is not None:
                break
            time.sleep(0.05)
        with open(out) as f:
            return p, json.load(f)

    def test_cli_json_admin_and_no_leftover_process(self):
        with tempfile.TemporaryDirectory() as tmp:
            p, doc = self.run_cli(tmp)
            try:
                self.assertEqual(sorted(doc), ["endpoint", "instance_role", "moto_endpoint", "moto_pid", "ops",
                                               "proxy", "region", "tenants", "timings"])
                self.assertEqual(sorted(doc["tenants"][0]), ["account_id", "external_id", "role_arn"])
                self.assertEqual(doc["endpoint"], doc["proxy"]["endpoint"])
                admin = doc["proxy"]["admin"]
                urllib.request.urlopen(urllib.request.Request(
                    admin + "/faults", data=b'{"kind": "throttle", "service": "sts"}', method="POST"))
                self.assertEqual(len(json.load(urllib.request.urlopen(admin + "/faults"))), 1)
            finally:
                p.send_signal(signal.SIGTERM)
                self.assertEqual(p.wait(10), 128 + signal.SIGTERM)
            self.assertFalse(_alive(doc["moto_pid"]))
            # even kill -9 of the harness takes moto down (PR_SET_PDEATHSIG)
            os.remove(os.path.join(tmp, "aws.json"))
            p, doc = self.run_cli(tmp)
            p.kill()
            p.wait()
            for _ in range(50):
                if not _alive(doc["moto_pid"]):
                    break
                time.sleep(0.1)
            self.assertFalse(_alive(doc["moto_pid"]))


if __name__ == "__main__":
    unittest.main(verbosity=1)
