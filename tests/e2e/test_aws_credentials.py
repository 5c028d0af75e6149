"""AWS credentials end to end: the real `logferry aws-check` (the agent's
own credential chain, STS AssumeRole and signing) against moto with
request authentication on, through our fault proxy where moto falls short
(ExternalId check, expiring credentials, IMDSv2, container, web identity).
Every log line, at debug level, is checked for secrets."""
import json
import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
import lfharness as h  # noqa: E402

sys.path.insert(0, os.path.join(h.SRC, "tests", "aws"))
from harness import Harness  # noqa: E402

H = None


def setUpModule():
    global H
    H = Harness(tenants=3, proxy=True)
    H.__enter__()


def tearDownModule():
    H.__exit__(None, None, None)


CLEAN_ENV = {k: v for k, v in os.environ.items()
             if not k.startswith("AWS_") and k not in ("HTTP_PROXY", "HTTPS_PROXY",
                                                         "http_proxy", "https_proxy")}
CLEAN_ENV["NO_PROXY"] = "127.0.0.1,localhost"


class AwsCredentials(h.TestCase):
    def setUp(self):
        super().setUp()
        self.info = H.info()
        H.proxy.clear_faults()
        H.proxy.configure({"assume_role_ttl": None, "credentials_ttl": None})
        self.home = os.path.join(self.root, "home")
        os.makedirs(os.path.join(self.home, ".aws"))
        self.secrets = [self.info["ops"]["secret_access_key"],
                        self.info["instance_role"]["secret_access_key"],
                        self.info["instance_role"]["session_token"]] + \
                       [t["external_id"] for t in self.info["tenants"]]

    def conf(self, aws_extra=""):
        a = self.agent(log_level="debug",
                       extra='aws: { region = "us-east-1"; sts_endpoint = "%s"; %s };'
                       % (self.info["endpoint"], aws_extra))
        return a

    def check(self, env_extra, args=(), conf_extra="", expect_ok=True):
        a = self.conf(conf_extra)
        env = dict(CLEAN_ENV, HOME=self.home, **env_extra)
        p = subprocess.run(a.cmd("aws-check", *args), env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=120)
        out, err = p.stdout.decode(), p.stderr.decode()
        for s in self.secrets:
            self.assertNotIn(s, out + err, "a secret reached the output")
        # Session tokens moto hands out start like this; none may be logged.
        self.assertIsNone(re.search(r"FQoGZXIvYXdzE[A-Za-z0-9/+=]{20,}", out + err))
        if expect_ok:
            self.assertEqual(p.returncode, 0, err)
        else:
            self.assertEqual(p.returncode, 1, out + err)
        return out, err

    def ops_env(self, secret=None):
        return {"AWS_ACCESS_KEY_ID": self.info["ops"]["access_key_id"],
                "AWS_SECRET_ACCESS_KEY": secret or self.info["ops"]["secret_access_key"]}

    def test_environment_provider(self):
        out, _ = self.check(self.ops_env())
        self.assertIn("account=123456789012", out)
        self.assertIn("user/logferry-ops", out)

    def test_wrong_secret_is_refused_by_moto(self):
        _, err = self.check(self.ops_env(secret="x" * 40), expect_ok=False)
        self.assertIn("SignatureDoesNotMatch", err)

    def test_static_keys_in_config_warn(self):
        ops = self.info["ops"]
        out, err = self.check({}, conf_extra='access_key_id = "%s"; secret_access_key = "%s";'
                              % (ops["access_key_id"], ops["secret_access_key"]))
        self.assertIn("account=123456789012", out)
        self.assertIn("static AWS keys in the config file", err)

    def test_shared_files_profile_and_chained_role(self):
        t = self.info["tenants"][1]
        ops = self.info["ops"]
        with open(os.path.join(self.home, ".aws", "credentials"), "w") as f:
            f.write("[base]\naws_access_key_id = %s\naws_secret_access_key = %s\n"
                    % (ops["access_key_id"], ops["secret_access_key"]))
        with open(os.path.join(self.home, ".aws", "config"), "w") as f:
            f.write("[profile tenant]\nrole_arn = %s\nsource_profile = base\n"
                    "external_id = %s\n" % (t["role_arn"], t["external_id"]))
        out, _ = self.check({"AWS_PROFILE": "base"})
        self.assertIn("account=123456789012", out)
        out, _ = self.check({"AWS_PROFILE": "tenant"})
        self.assertIn("account=%s" % t["account_id"], out)

    def test_assume_role_with_external_id(self):
        t = self.info["tenants"][0]
        out, _ = self.check(self.ops_env(), ("--role-arn", t["role_arn"],
                                             "--external-id", t["external_id"]))
        self.assertIn("account=%s" % t["account_id"], out)
        self.assertIn("assumed-role/LogWriter", out)
        # A wrong ExternalId is refused (by our proxy: moto does not check).
        _, err = self.check(self.ops_env(), ("--role-arn", t["role_arn"],
                                             "--external-id", "wrong-external-id"),
                            expect_ok=False)
        self.assertIn("AccessDenied", err)
        self.assertNotIn("wrong-external-id", err)
        # A malformed ExternalId never reaches STS.
        _, err = self.check(self.ops_env(), ("--role-arn", t["role_arn"],
                                             "--external-id", "bad id!"),
                            expect_ok=False)
        self.assertIn("external", err.lower())

    def test_imdsv2(self):
        out, _ = self.check({"AWS_EC2_METADATA_SERVICE_ENDPOINT":
                             self.info["proxy"]["imds_endpoint"]})
        self.assertIn("role/InstanceRole", out.replace("assumed-role", "role"))

    def test_container_credentials(self):
        p = self.info["proxy"]
        out, _ = self.check({"AWS_CONTAINER_CREDENTIALS_FULL_URI": p["container_credentials_full_uri"],
                             "AWS_CONTAINER_AUTHORIZATION_TOKEN": p["container_authorization_token"]})
        self.assertIn("InstanceRole", out)

    def test_web_identity(self):
        tok = os.path.join(self.root, "token")
        with open(tok, "w") as f:
            f.write("eyJhbGciOiJub25lIn0.eyJzdWIiOiJ0ZXN0In0.")
        out, _ = self.check({"AWS_WEB_IDENTITY_TOKEN_FILE": tok,
                             "AWS_ROLE_ARN": self.info["instance_role"]["role_arn"]})
        self.assertIn("InstanceRole", out)

    def test_refresh_before_expiry_and_on_expired_answer(self):
        # Temporary credentials that live 20 s (moto's never expire: the
        # proxy enforces it and answers ExpiredToken afterwards). The cache
        # refreshes ahead (at most half a lifetime before expiry) and never
        # uses keys within 10 s of expiry.
        t = self.info["tenants"][2]
        H.proxy.configure({"assume_role_ttl": 20})
        H.proxy.reset_stats()
        out, err = self.check(self.ops_env(), ("--role-arn", t["role_arn"],
                                               "--external-id", t["external_id"],
                                               "-n", "16", "--interval-ms", "1000"))
        self.assertEqual(out.count("account=%s" % t["account_id"]), 16, err)
        st = H.proxy.stats()
        self.assertGreaterEqual(st["requests"].get("sts:AssumeRole", 0), 2,
                                "short-lived credentials were never refreshed")

    def test_expired_token_answer_refreshes_and_retries(self):
        t = self.info["tenants"][1]
        H.proxy.configure({"assume_role_ttl": 900})
        H.proxy.reset_stats()
        # The second GetCallerIdentity, 10.5 s later, is answered
        # ExpiredToken: the agent drops its credentials, assumes the role
        # again and retries once. (Keys refused within 10 s of their
        # refresh are treated as a refusal loop, not an expiry: hence the
        # wait.)
        a = self.conf()
        env = dict(CLEAN_ENV, HOME=self.home, **self.ops_env())
        p = subprocess.Popen(a.cmd("aws-check", "--role-arn", t["role_arn"],
                                   "--external-id", t["external_id"], "-n", "2",
                                   "--interval-ms", "10500"),
                             env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        time.sleep(2)
        H.proxy.add_fault(kind="expired", service="sts",
                          operation="GetCallerIdentity", count=1)
        out, err = p.communicate(timeout=60)
        self.assertEqual(p.returncode, 0, err.decode())
        self.assertEqual(out.decode().count("account=%s" % t["account_id"]), 2)
        st = H.proxy.stats()
        self.assertEqual(st["requests"].get("sts:AssumeRole"), 2, st["requests"])
        self.assertEqual(st["faults_served"].get("expired"), 1)

    def test_failing_sts_keeps_valid_credentials(self):
        t = self.info["tenants"][0]
        H.proxy.configure({"assume_role_ttl": 900})
        # After the first AssumeRole, STS fails; cached credentials are
        # still valid, so every call goes on working.
        H.proxy.add_fault(kind="error", status=500, service="sts",
                          operation="AssumeRole", count=None, seconds=60)
        out, err = self.check(self.ops_env(), ("--role-arn", t["role_arn"],
                                               "--external-id", t["external_id"]),
                              expect_ok=False)
        self.assertIn("retryable", err)  # no credentials at all yet
        H.proxy.clear_faults()
        # Now with credentials in the cache, break STS mid-run.
        a = self.conf()
        env = dict(CLEAN_ENV, HOME=self.home, **self.ops_env())
        p = subprocess.Popen(a.cmd("aws-check", "--role-arn", t["role_arn"],
                                   "--external-id", t["external_id"], "-n", "4",
                                   "--interval-ms", "500"),
                             env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        time.sleep(0.3)
        H.proxy.add_fault(kind="error", status=500, service="sts",
                          operation="AssumeRole", count=None, seconds=60)
        out, err = p.communicate(timeout=60)
        H.proxy.clear_faults()
        self.assertEqual(p.returncode, 0, err.decode())
        self.assertEqual(out.decode().count("account="), 4)


if __name__ == "__main__":
    h.main()
