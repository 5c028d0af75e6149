#!/usr/bin/env python3
"""moto with authentication on, provisioned as logferry's AWS world.

Why this exists: the AWS sinks must be tested against code we did not write,
with real signature checks and real account separation. This module starts
`python3 -m moto.server` on a free 127.0.0.1 port with request authentication
enforced after a counted bootstrap (INITIAL_NO_AUTH_ACTION_COUNT), and creates:

  * the operations account 123456789012: IAM user "logferry-ops" with an
    access key (allowed sts:AssumeRole, logs:*, s3:* in its own account) and a
    role "InstanceRole" whose temporary keys the fault proxy serves over IMDSv2
    and the container-credentials endpoint;
  * K tenant accounts, each with role "LogWriter" (logs:*, s3:*) that trusts
    the ops account only with that tenant's sts:ExternalId.

moto does not check ExternalId on a cross-account AssumeRole, so use the
endpoint of tests/aws/faultproxy.py (start_proxy=True) for that check.

Library:
    from harness import Harness
    with Harness(tenants=50, proxy=True) as h:
        h.info()            # the JSON document below, as a dict
        h.proxy.add_fault(kind="throttle", service="logs", count=3)
CLI:
    python3 tests/aws/harness.py --tenants 50 --proxy --json-out /tmp/aws.json
    (prints the JSON on one line, runs until SIGTERM/SIGINT or stdin EOF
     with --until-eof; --once provisions, prints and exits: for timing)
"""
import argparse
import atexit
import concurrent.futures
import ctypes
import http.client
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

OPS_ACCOUNT = "123456789012"  # moto's default account
OPS_USER = "logferry-ops"
TENANT_ROLE = "LogWriter"
INSTANCE_ROLE = "InstanceRole"
FIRST_TENANT_ACCOUNT = 100000000001
# IAM calls made without authentication while provisioning:
# CreateUser, PutUserPolicy, CreateAccessKey, CreateRole+PutRolePolicy (instance role)
OPS_BOOTSTRAP_CALLS = 5
CALLS_PER_TENANT = 2  # CreateRole, PutRolePolicy

_live = set()  # harnesses not yet stopped, for atexit / signals
HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)  # for faultproxy


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _die_with_parent():
    """preexec_fn: the child gets SIGKILL when our (spawning) thread dies,
    so even a `kill -9` of the test leaves no moto behind (Linux only)."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def _policy(actions, resource="*"):
    return json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": actions, "Resource": resource}]})


def _trust(principal, external_id=None):
    st = {"Effect": "Allow", "Principal": {"AWS": principal}, "Action": "sts:AssumeRole"}
    if external_id is not None:
        st["Condition"] = {"StringEquals": {"sts:ExternalId": external_id}}
    return json.dumps({"Version": "2012-10-17", "Statement": [st]})


class Harness:
    def __init__(self, tenants=2, proxy=False, region="us-east-1", threads=16,
                 moto_log=None, first_account=FIRST_TENANT_ACCOUNT):
        self.n_tenants = tenants
        self.want_proxy = proxy
        self.region = region
        self.threads = threads
        self.moto_log = moto_log
        self.first_account = first_account
        self.proc = None
        self.proxy = None
        self.port = None
        self.ops = {}
        self.instance = {}
        self.tenants = []
        self.timings = {}
        self.auth_closed_by = None

    # ---- lifecycle -------------------------------------------------------
    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def start(self):
        _install_cleanup()
        _live.add(self)
        try:
            t0 = time.monotonic()
            self._start_moto(OPS_BOOTSTRAP_CALLS + CALLS_PER_TENANT * self.n_tenants)
            t1 = time.monotonic()
            self._provision()
            t2 = time.monotonic()
            self._enforce()
            self._assume_instance_role()
            if self.want_proxy:
                from faultproxy import FaultProxy
                self.proxy = FaultProxy(self.moto_endpoint).start()
                self.proxy.configure(self.proxy_config())
            self.timings = {"moto_start_s": round(t1 - t0, 3),
                            "provision_s": round(t2 - t1, 3),
                            "total_s": round(time.monotonic() - t0, 3),
                            "auth_window_closed_by": self.auth_closed_by}
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self):
        if self.proxy:
            self.proxy.stop()
            self.proxy = None
        p, self.proc = self.proc, None
        if p and p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGTERM)
                p.wait(5)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                p.wait()
        _live.discard(self)

    def _start_moto(self, no_auth_count, attempts=3):
        env = dict(os.environ, INITIAL_NO_AUTH_ACTION_COUNT=str(no_auth_count))
        for k in ("MOTO_ACCOUNT_ID", "HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
            env.pop(k, None)  # MOTO_ACCOUNT_ID would put every request into one account
        for attempt in range(attempts):  # the free port may be taken before moto binds it
            self.port = free_port()
            log = open(self.moto_log, "ab") if self.moto_log else subprocess.DEVNULL
            try:
                self.proc = subprocess.Popen(
                    [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
                    env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                    start_new_session=True, preexec_fn=_die_with_parent)
            finally:
                if log is not subprocess.DEVNULL:
                    log.close()
            if self._wait_ready():
                return
        raise RuntimeError(f"moto did not start (exit code {self.proc.returncode})")

    def _wait_ready(self, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:  # GET on reset-auth is a harmless 400 and is not counted as an action
                c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                c.request("GET", "/moto-api/reset-auth")
                c.getresponse().read()
                c.close()
                return True
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"moto did not become ready in {timeout} s")

    @property
    def moto_endpoint(self):
        return f"http://127.0.0.1:{self.port}"

    @property
    def endpoint(self):
        """What the agent should use: the proxy if there is one."""
        return self.proxy.endpoint if self.proxy else self.moto_endpoint

    # ---- clients ---------------------------------------------------------
    def client(self, service, creds=None, endpoint=None, account_header=None, retries=1, **config):
        """boto3 client; creds is a dict with access_key_id/secret_access_key
        [/session_token] (default: the ops user). account_header sets
        x-moto-account-id (only meaningful while auth is not enforced).
        config: extra botocore Config arguments."""
        import boto3
        from botocore.config import Config
        creds = creds or self.ops or {"access_key_id": "AKIABOOTSTRAP", "secret_access_key": "x"}
        c = boto3.session.Session().client(
            service, endpoint_url=endpoint or self.endpoint, region_name=self.region,
            aws_access_key_id=creds["access_key_id"],
            aws_secret_access_key=creds["secret_access_key"],
            aws_session_token=creds.get("session_token"),
            config=Config(retries={"total_max_attempts": retries, "mode": "standard"},
                          s3={"addressing_style": "path"}, max_pool_connections=50, **config))
        if account_header:
            c.meta.events.register("before-sign.*.*", lambda request, **kw:
                                   request.headers.__setitem__("x-moto-account-id", account_header))
        return c

    def assume(self, tenant, external_id=None, endpoint=None, session="logferry-test"):
        """AssumeRole into a tenant (dict or index) with the ops user; returns creds dict."""
        if isinstance(tenant, int):
            tenant = self.tenants[tenant]
        r = self.client("sts", endpoint=endpoint).assume_role(
            RoleArn=tenant["role_arn"], RoleSessionName=session,
            ExternalId=external_id or tenant["external_id"])["Credentials"]
        return {"access_key_id": r["AccessKeyId"], "secret_access_key": r["SecretAccessKey"],
                "session_token": r["SessionToken"], "expiration": r["Expiration"].isoformat()}

    # ---- provisioning ----------------------------------------------------
    def _provision(self):
        iam = self.client("iam", endpoint=self.moto_endpoint)  # unauthenticated window
        user = iam.create_user(UserName=OPS_USER)["User"]
        iam.put_user_policy(UserName=OPS_USER, PolicyName="ops", PolicyDocument=_policy(
            ["sts:AssumeRole", "sts:GetCallerIdentity", "logs:*", "s3:*"]))
        key = iam.create_access_key(UserName=OPS_USER)["AccessKey"]
        role = iam.create_role(RoleName=INSTANCE_ROLE,
                               AssumeRolePolicyDocument=_trust(user["Arn"]))["Role"]
        iam.put_role_policy(RoleName=INSTANCE_ROLE, PolicyName="instance", PolicyDocument=_policy(
            ["sts:AssumeRole", "sts:GetCallerIdentity", "logs:*", "s3:*"]))
        self.ops = {"account_id": OPS_ACCOUNT, "user_arn": user["Arn"],
                    "access_key_id": key["AccessKeyId"],
                    "secret_access_key": key["SecretAccessKey"]}
        self.instance = {"role_arn": role["Arn"]}

        trusted = f"arn:aws:iam::{OPS_ACCOUNT}:root"
        # One client for all threads (boto3 clients are thread-safe; creating
        # one costs ~50 ms); each thread says which account it is provisioning.
        local = threading.local()
        iam.meta.events.register("before-sign.*.*", lambda request, **kw:
                                 request.headers.__setitem__("x-moto-account-id", local.acct))

        def make(i):
            local.acct = acct = str(self.first_account + i)
            ext = f"logferry-{acct}-{secrets.token_hex(6)}"
            arn = iam.create_role(RoleName=TENANT_ROLE, AssumeRolePolicyDocument=_trust(trusted, ext))["Role"]["Arn"]
            iam.put_role_policy(RoleName=TENANT_ROLE, PolicyName="write", PolicyDocument=_policy(["logs:*", "s3:*"]))
            return {"account_id": acct, "role_arn": arn, "external_id": ext}

        with concurrent.futures.ThreadPoolExecutor(self.threads) as ex:
            self.tenants = list(ex.map(make, range(self.n_tenants)))

    def _enforce(self):
        """The bootstrap count is exact, but moto's counter is not thread-safe,
        so prove enforcement with an unknown key; if moto still lets it through,
        close the window with moto's own /moto-api/reset-auth."""
        import botocore.exceptions
        probe = self.client("sts", creds={"access_key_id": "AKIAPROBEPROBEPROBE0", "secret_access_key": "x"},
                            endpoint=self.moto_endpoint)
        for attempt in range(2):
            try:
                probe.get_caller_identity()
            except botocore.exceptions.ClientError as e:
                if e.response["Error"]["Code"] == "InvalidClientTokenId":
                    self.auth_closed_by = "reset-auth" if attempt else "count"
                    return
                raise
            c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
            c.request("POST", "/moto-api/reset-auth", body=b"0")
            c.getresponse().read()
        raise RuntimeError("moto does not enforce authentication")

    def _assume_instance_role(self):
        r = self.client("sts", endpoint=self.moto_endpoint).assume_role(
            RoleArn=self.instance["role_arn"], RoleSessionName="i-0123456789abcdef0",
            DurationSeconds=43200)["Credentials"]
        self.instance.update(access_key_id=r["AccessKeyId"], secret_access_key=r["SecretAccessKey"],
                             session_token=r["SessionToken"])

    # ---- output ----------------------------------------------------------
    def proxy_config(self):
        creds = {k: self.instance[k] for k in ("access_key_id", "secret_access_key", "session_token")}
        return {"external_ids": {t["role_arn"]: t["external_id"] for t in self.tenants},
                "keys": {self.ops["access_key_id"]: OPS_ACCOUNT, self.instance["access_key_id"]: OPS_ACCOUNT},
                "region": self.region,
                "instance_credentials": {"role_name": INSTANCE_ROLE, **creds},
                "web_identity": {"role_arn": self.instance["role_arn"], "token": None, "credentials": creds}}

    def info(self):
        d = {"endpoint": self.endpoint, "moto_endpoint": self.moto_endpoint, "region": self.region,
             "moto_pid": self.proc.pid if self.proc else None,
             "ops": self.ops, "instance_role": self.instance, "tenants": self.tenants,
             "timings": self.timings}
        if self.proxy:
            d["proxy"] = self.proxy.describe()
        return d


def _stop_all():
    for h in list(_live):
        h.stop()


_cleanup_installed = False


def _install_cleanup():
    """atexit always; SIGTERM/SIGHUP become SystemExit (so finally/atexit run)
    if nobody else handles them and we are on the main thread."""
    global _cleanup_installed
    if _cleanup_installed:
        return
    _cleanup_installed = True
    atexit.register(_stop_all)
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGHUP):
            if signal.getsignal(sig) in (signal.SIG_DFL, None):
                signal.signal(sig, lambda s, f: sys.exit(128 + s))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tenants", type=int, default=2)
    ap.add_argument("--proxy", action="store_true", help="also start tests/aws/faultproxy.py in front of moto")
    ap.add_argument("--region", default="us-east-1")
    ap.add_argument("--threads", type=int, default=16, help="provisioning threads")
    ap.add_argument("--json-out", help="also write the JSON here (atomically, once ready)")
    ap.add_argument("--moto-log", help="append moto's output to this file")
    ap.add_argument("--once", action="store_true", help="provision, print, stop (timing runs)")
    ap.add_argument("--until-eof", action="store_true", help="stop when stdin reaches EOF")
    a = ap.parse_args()
    signal.signal(signal.SIGINT, lambda s, f: sys.exit(130))
    with Harness(a.tenants, proxy=a.proxy, region=a.region, threads=a.threads, moto_log=a.moto_log) as h:
        doc = json.dumps(h.info())
        if a.json_out:
            fd, tmp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(a.json_out)))
            with os.fdopen(fd, "w") as f:
                f.write(doc + "\n")
            os.replace(tmp, a.json_out)
        print(doc, flush=True)
        if a.once:
            return
        if a.until_eof:
            sys.stdin.read()
        else:
            while True:
                signal.pause()


if __name__ == "__main__":
    main()
