#!/usr/bin/env python3
"""A fault-injecting HTTP/1.1 proxy between the agent and moto (stdlib only).

Why this exists: moto checks signatures and keeps accounts apart, but it
ignores the PutLogEvents limits, does not check ExternalId on cross-account
AssumeRole, issues credentials that never expire, cannot answer
AssumeRoleWithWebIdentity with authentication on, has no IMDS or container
credentials endpoint and never fails on purpose. The agent talks to this proxy
(endpoint override, or HTTP_PROXY: absolute-form requests are accepted too)
and the proxy:

  * forwards requests byte for byte (Host header and body untouched, so the
    SigV4 signature stays valid); moto closes every connection, the proxy
    keeps the client's connection alive and opens one upstream per request;
  * enforces PutLogEvents limits, answering 400 InvalidParameterException as
    AWS does, and records every violation;
  * denies AssumeRole whose ExternalId differs from the registered one
    (403 AccessDenied), and can shorten AssumeRole credentials to a TTL after
    which requests signed with them get ExpiredToken(Exception);
  * injects faults on demand and counts everything (admin API under /__proxy/);
  * serves IMDSv2, container credentials and AssumeRoleWithWebIdentity from
    credentials the harness minted.

Admin API (JSON, same port):
  GET    /__proxy/stats         counters (see Stats.snapshot)
  POST   /__proxy/stats/reset   zero the counters
  GET    /__proxy/faults        active fault rules
  POST   /__proxy/faults        add a rule or a list of rules -> {"ids": [...]}
  DELETE /__proxy/faults        remove all rules
  GET    /__proxy/config        current config; POST merges keys into it
  GET    /__proxy/health        {"ok": true}
Fault rule: {"kind": "throttle|error|delay|reset|expired|malformed",
             "service": "logs|s3|sts|imds|container"?, "operation": "PutLogEvents"?,
             "account": "100000000001"?, "count": 1 (null: unlimited),
             "probability": 1.0, "seconds": null (active window),
             "status": 500|503 (error), "delay": 1.0 (delay), "body": "truncated|garbage|empty" (malformed),
             "code"/"message" (override the error), "forward": bool}
"forward" (default true for reset/malformed, false for throttle/error/expired)
sends the request to moto first, so the call takes effect although the client
sees a fault; "delay" sleeps, then always forwards.
Config (POST /__proxy/config merges; dicts external_ids and keys are merged too):
  external_ids {role_arn: id}   AssumeRole must carry this ExternalId
  keys {access_key_id: account} for stats and "account" matching (AssumeRole keys are learnt)
  assume_role_ttl s|null        AssumeRole answers expire after s seconds, then ExpiredToken
  credentials_ttl s|null        same for IMDS/container/web-identity credentials (valid until
                                the last Expiration served: fetch again to extend)
  instance_credentials {role_name, access_key_id, secret_access_key, session_token}
  container_path, container_token, web_identity {role_arn, token|null, credentials}
  region, check_limits (true), logs_json_auth_errors (false: moto's 403 XML passes through)

CLI: python3 tests/aws/faultproxy.py --upstream http://127.0.0.1:5000 [--port 0] [--config cfg.json]
     prints {"endpoint": ..., "admin": ...} on one line, runs until SIGTERM/SIGINT.
"""
import argparse
import datetime
import http.client
import http.server
import json
import random
import re
import secrets
import signal
import socket
import struct
import sys
import threading
import time
import urllib.parse

MAX_BATCH_BYTES = 1_048_576
MAX_EVENTS = 10_000
EVENT_OVERHEAD = 26
MAX_EVENT_BYTES = MAX_BATCH_BYTES - EVENT_OVERHEAD  # 1,048,550 bytes of message
MAX_SPAN_MS = 24 * 3600 * 1000
HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te",
              "upgrade", "proxy-authorization", "content-length"}
FORWARD_BY_DEFAULT = {"delay", "reset", "malformed"}
KINDS = {"throttle", "error", "delay", "reset", "expired", "malformed"}


def _iso(ts):
    return datetime.datetime.fromtimestamp(ts, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _req_id():
    return secrets.token_hex(16)


def _xml_escape(s):
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def aws_error(service, status, code, message):
    """(status, headers, body) shaped like the real service's error answer."""
    rid = _req_id()
    if service == "logs":
        return status, {"Content-Type": "application/x-amz-json-1.1", "x-amzn-RequestId": rid}, \
            json.dumps({"__type": code, "message": message}).encode()
    if service == "s3":
        body = (f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code>'
                f"<Message>{_xml_escape(message)}</Message><RequestId>{rid}</RequestId>"
                f"<HostId>{secrets.token_hex(8)}</HostId></Error>")
        return status, {"Content-Type": "application/xml", "x-amz-request-id": rid}, body.encode()
    if service in ("imds", "container"):
        return status, {"Content-Type": "text/plain"}, message.encode()
    kind = "Receiver" if status >= 500 else "Sender"
    body = (f'<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>{kind}</Type>'
            f"<Code>{code}</Code><Message>{_xml_escape(message)}</Message></Error>"
            f"<RequestId>{rid}</RequestId></ErrorResponse>")
    return status, {"Content-Type": "text/xml", "x-amzn-RequestId": rid}, body.encode()


# (status, code, message) per fault kind and service; "*" is the fallback
CANNED = {
    "throttle": {"logs": (400, "ThrottlingException", "Rate exceeded"),
                 "s3": (503, "SlowDown", "Please reduce your request rate."),
                 "*": (400, "Throttling", "Rate exceeded")},
    "expired": {"logs": (400, "ExpiredTokenException", "The security token included in the request is expired"),
                "s3": (400, "ExpiredToken", "The provided token has expired."),
                "*": (403, "ExpiredToken", "The security token included in the request is expired")},
    500: {"logs": (500, "ServiceUnavailableException", "The service cannot complete the request."),
          "s3": (500, "InternalError", "We encountered an internal error. Please try again."),
          "*": (500, "InternalFailure", "The request processing has failed because of an unknown error.")},
    503: {"logs": (503, "ServiceUnavailableException", "The service cannot complete the request."),
          "s3": (503, "ServiceUnavailable", "Service is unable to handle request."),
          "*": (503, "ServiceUnavailable", "Service is unavailable.")},
}


def canned(kind, service, rule=None):
    """A fault's answer; kind is "throttle", "expired" or an HTTP status (5xx)."""
    table = CANNED.get(kind) or CANNED[500]
    status, code, msg = table.get(service, table["*"])
    rule = rule or {}
    status = kind if isinstance(kind, int) else status
    return aws_error(service, status, rule.get("code") or code, rule.get("message") or msg)


LOGS_AUTH_CODES = {"SignatureDoesNotMatch": "InvalidSignatureException",
                   "InvalidClientTokenId": "UnrecognizedClientException",
                   "AccessDenied": "AccessDeniedException"}


def logs_auth_error_like_aws(answer):
    """moto answers CloudWatch Logs auth failures as 403 XML; AWS uses 400 JSON."""
    m = re.search(rb"<Code>([^<]+)</Code>.*?<Message>([^<]*)</Message>", answer[2], re.S)
    if not m or m.group(1).decode() not in LOGS_AUTH_CODES:
        return answer
    return aws_error("logs", 400, LOGS_AUTH_CODES[m.group(1).decode()], m.group(2).decode())


def check_put_log_events(body):
    """[(rule, message)] for every PutLogEvents limit the request breaks."""
    try:
        req = json.loads(body)
        events = req.get("logEvents") or []
        sizes = [len(e["message"].encode("utf-8")) for e in events]
        stamps = [int(e["timestamp"]) for e in events]
    except (ValueError, KeyError, TypeError, AttributeError):
        return []  # malformed requests are moto's business
    out = []
    if not 1 <= len(events) <= MAX_EVENTS:
        out.append(("event_count", "1 validation error detected: Value at 'logEvents' failed to satisfy "
                    f"constraint: Member must have length between 1 and {MAX_EVENTS} (got {len(events)})"))
    big = [s for s in sizes if s > MAX_EVENT_BYTES]
    if big:
        out.append(("event_size", f"Log event too large: {max(big) + EVENT_OVERHEAD} bytes exceeds limit of {MAX_BATCH_BYTES}"))
    if 0 in sizes:
        out.append(("empty_message", "1 validation error detected: Value at 'logEvents.member.message' "
                    "failed to satisfy constraint: Member must have length greater than or equal to 1"))
    total = sum(sizes) + EVENT_OVERHEAD * len(sizes)
    if total > MAX_BATCH_BYTES:
        out.append(("batch_size", f"Upload too large: {total} bytes exceeds limit of {MAX_BATCH_BYTES}"))
    if any(b < a for a, b in zip(stamps, stamps[1:])):
        out.append(("order", "Log events in a single PutLogEvents request must be in chronological order."))
    if stamps and max(stamps) - min(stamps) > MAX_SPAN_MS:
        out.append(("span", "The batch of log events in a single PutLogEvents request cannot span more than 24 hours."))
    return out


def s3_operation(method, path, query, headers):
    bucket, _, key = path.lstrip("/").partition("/")
    q = urllib.parse.parse_qs(query, keep_blank_values=True)
    sub = next((k for k in q if k not in ("list-type", "prefix", "delimiter", "max-keys", "continuation-token",
                                         "start-after", "encoding-type", "marker", "versionId", "x-id")), None)
    if not bucket:
        return "ListBuckets"
    if key:
        if method == "PUT":
            return ("UploadPart" if "partNumber" in q else "PutObjectTagging" if sub == "tagging"
                    else "CopyObject" if "x-amz-copy-source" in headers else "PutObject")
        if method == "POST":
            return "CreateMultipartUpload" if "uploads" in q else "CompleteMultipartUpload" if "uploadId" in q else "PostObject"
        if method == "DELETE":
            return "AbortMultipartUpload" if "uploadId" in q else "DeleteObjectTagging" if sub == "tagging" else "DeleteObject"
        if method == "HEAD":
            return "HeadObject"
        return "ListParts" if "uploadId" in q else "GetObjectTagging" if sub == "tagging" else "GetObject"
    if method == "POST" and "delete" in q:
        return "DeleteObjects"
    if method == "GET" and not sub:
        return "ListObjectsV2" if "list-type" in q else "ListObjects"
    if method == "GET" and sub == "uploads":
        return "ListMultipartUploads"
    verb = {"PUT": "Put", "GET": "Get", "DELETE": "Delete", "HEAD": "Head"}.get(method, method.title())
    if not sub:
        return {"PUT": "CreateBucket", "DELETE": "DeleteBucket", "HEAD": "HeadBucket"}.get(method, verb + "Bucket")
    return verb + "Bucket" + "".join(p.title() for p in sub.split("-"))


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.reset()

    def reset(self):
        with self.lock:
            self.started = time.time()
            self.requests, self.by_account, self.status = {}, {}, {}
            self.rate_peak, self._second = {}, {}
            self.timeline = {}  # epoch second -> requests (all operations)
            self.violations, self.violation_count = [], 0
            self.faults_served, self.external_id_denied, self.expired_served = {}, 0, 0
            self.ple = {"calls": 0, "events": 0, "bytes": 0, "max_bytes": 0, "max_events": 0, "rejected_info": 0}

    def count(self, op, account):
        now = int(time.time())
        with self.lock:
            self.requests[op] = self.requests.get(op, 0) + 1
            self.by_account[account] = self.by_account.get(account, 0) + 1
            self.timeline[now] = self.timeline.get(now, 0) + 1
            for k in (op, "*"):
                sec, n = self._second.get(k, (now, 0))
                n = n + 1 if sec == now else 1
                self._second[k] = (now, n)
                self.rate_peak[k] = max(self.rate_peak.get(k, 0), n)
            if len(self.timeline) > 3600:
                del self.timeline[min(self.timeline)]

    def snapshot(self):
        with self.lock:
            return {"since": self.started, "requests": dict(self.requests), "by_account": dict(self.by_account),
                    "status": dict(self.status), "rate_peak": dict(self.rate_peak),
                    "per_second": sorted(self.timeline.items()),
                    "violation_count": self.violation_count, "violations": list(self.violations),
                    "faults_served": dict(self.faults_served), "external_id_denied": self.external_id_denied,
                    "expired_credentials_served": self.expired_served, "put_log_events": dict(self.ple)}


class FaultProxy:
    """The proxy's state and logic; Handler only moves bytes."""

    def __init__(self, upstream, port=0, host="127.0.0.1"):
        u = urllib.parse.urlsplit(upstream)
        self.upstream = (u.hostname, u.port or 80)
        self.stats_ = Stats()
        self.lock = threading.Lock()
        self.rules, self._next_id = [], 1
        self.expiry = {}          # temporary access key id -> epoch seconds after which it is expired
        self.imds_tokens = {}     # token -> expiry
        self.config = {"external_ids": {}, "keys": {}, "assume_role_ttl": None, "credentials_ttl": None,
                       "instance_credentials": None, "container_path": "/v2/credentials/logferry",
                       "container_token": secrets.token_urlsafe(24), "web_identity": None,
                       "region": "us-east-1", "check_limits": True, "logs_json_auth_errors": False}
        self.server = http.server.ThreadingHTTPServer((host, port), Handler)
        self.server.daemon_threads = True
        self.server.proxy = self
        self.server.conns = set()
        self.thread = None

    # ---- public API --------------------------------------------------------
    @property
    def endpoint(self):
        return "http://%s:%d" % self.server.server_address[:2]

    def start(self):
        self.thread = threading.Thread(target=self.server.serve_forever, name="faultproxy", daemon=True)
        self.thread.start()
        return self

    def stop(self):
        self.server.shutdown()
        self.server.server_close()
        for c in list(self.server.conns):  # idle keep-alive connections
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def describe(self):
        c = self.config
        return {"endpoint": self.endpoint, "admin": self.endpoint + "/__proxy",
                "imds_endpoint": self.endpoint,
                "container_credentials_full_uri": self.endpoint + c["container_path"],
                "container_authorization_token": c["container_token"]}

    def configure(self, cfg):
        with self.lock:
            for k, v in cfg.items():
                if k in ("external_ids", "keys"):
                    self.config[k].update(v)
                else:
                    self.config[k] = v
        return self.config

    def add_fault(self, **rule):
        kind = rule.get("kind")
        if kind not in KINDS:
            raise ValueError(f"unknown fault kind {kind!r}")
        rule.setdefault("count", 1)
        rule.setdefault("probability", 1.0)
        rule.setdefault("forward", kind in FORWARD_BY_DEFAULT)
        rule["served"] = 0
        with self.lock:
            rule["id"] = self._next_id
            self._next_id += 1
            if rule.get("seconds"):
                rule["until"] = time.time() + float(rule["seconds"])
            self.rules.append(rule)
        return rule["id"]

    def clear_faults(self):
        with self.lock:
            self.rules = []

    def faults(self):
        with self.lock:
            return [dict(r) for r in self.rules]

    def stats(self):
        return self.stats_.snapshot()

    def reset_stats(self):
        self.stats_.reset()

    # ---- internals ---------------------------------------------------------
    def take_fault(self, service, op, account):
        now = time.time()
        with self.lock:
            self.rules = [r for r in self.rules if r.get("until", now + 1) > now]
            for r in self.rules:
                if any(r.get(f) not in (None, v) for f, v in (("service", service), ("operation", op), ("account", account))):
                    continue
                if random.random() >= r["probability"]:
                    continue
                r["served"] += 1
                if r["count"] is not None and r["served"] >= r["count"]:
                    self.rules.remove(r)
                self.stats_.faults_served[r["kind"]] = self.stats_.faults_served.get(r["kind"], 0) + 1
                return dict(r)
        return None

    def account_of(self, akid):
        return self.config["keys"].get(akid, "unknown")

    def record_violations(self, found, account, body):
        try:
            req = json.loads(body)
        except ValueError:
            req = {}
        with self.stats_.lock:
            for rule, msg in found:
                self.stats_.violation_count += 1
                if len(self.stats_.violations) < 1000:
                    self.stats_.violations.append({"time": time.time(), "rule": rule, "message": msg, "account": account,
                                                   "logGroupName": req.get("logGroupName"),
                                                   "logStreamName": req.get("logStreamName")})

    def record_ple(self, body, answer_body):
        try:
            ev = json.loads(body).get("logEvents") or []
            n = sum(len(e["message"].encode("utf-8")) + EVENT_OVERHEAD for e in ev)
            rejected = b"rejectedLogEventsInfo" in answer_body and b'"rejectedLogEventsInfo": {}' not in answer_body
        except (ValueError, KeyError, TypeError, AttributeError):
            return
        with self.stats_.lock:
            p = self.stats_.ple
            p["calls"] += 1
            p["events"] += len(ev)
            p["bytes"] += n
            p["max_bytes"] = max(p["max_bytes"], n)
            p["max_events"] = max(p["max_events"], len(ev))
            p["rejected_info"] += bool(rejected)

    def after_assume_role(self, params, status, headers, body):
        """ExternalId check, learn key->account, shorten the credentials."""
        if status != 200:
            return status, headers, body
        role = params.get("RoleArn", "")
        expected = self.config["external_ids"].get(role)
        if expected is not None and params.get("ExternalId") != expected:
            with self.stats_.lock:
                self.stats_.external_id_denied += 1
            return aws_error("sts", 403, "AccessDenied",
                             f"User is not authorized to perform: sts:AssumeRole on resource: {role}")
        m = re.search(rb"<AccessKeyId>([^<]+)</AccessKeyId>", body)
        acct = re.search(r":iam::(\d{12}):", role)
        if m and acct:
            with self.lock:
                self.config["keys"][m.group(1).decode()] = acct.group(1)
        ttl = self.config["assume_role_ttl"]
        if m and ttl is not None:
            exp = time.time() + float(ttl)
            self.expiry[m.group(1).decode()] = exp
            body = re.sub(rb"<Expiration>[^<]*</Expiration>", b"<Expiration>" + _iso(exp).encode() + b"</Expiration>", body)
        return status, headers, body

    def served_credentials(self, creds):
        ttl = self.config["credentials_ttl"]
        exp = time.time() + (float(ttl) if ttl is not None else 6 * 3600)
        if ttl is not None:  # valid until the last Expiration we handed out
            self.expiry[creds["access_key_id"]] = exp
        else:
            self.expiry.pop(creds["access_key_id"], None)
        return exp

    def web_identity(self, params):
        """AssumeRoleWithWebIdentity: moto answers 500 when auth is on, so answer it here."""
        wi = self.config["web_identity"]
        if not wi or params.get("RoleArn") != wi["role_arn"]:
            return None
        if wi.get("token") and params.get("WebIdentityToken") != wi["token"]:
            return aws_error("sts", 400, "InvalidIdentityToken", "Couldn't verify the identity token.")
        c = wi["credentials"]
        exp = self.served_credentials(c)
        role = wi["role_arn"]
        session = _xml_escape(params.get("RoleSessionName", "session"))
        body = (f'<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">'
                f"<AssumeRoleWithWebIdentityResult><Credentials><AccessKeyId>{c['access_key_id']}</AccessKeyId>"
                f"<SecretAccessKey>{c['secret_access_key']}</SecretAccessKey><SessionToken>{c['session_token']}</SessionToken>"
                f"<Expiration>{_iso(exp)}</Expiration></Credentials>"
                f"<AssumedRoleUser><Arn>{role.replace(':iam:', ':sts:').replace(':role/', ':assumed-role/')}/{session}</Arn>"
                f"<AssumedRoleId>AROAEXAMPLE:{session}</AssumedRoleId></AssumedRoleUser>"
                f"<SubjectFromWebIdentityToken>logferry-test</SubjectFromWebIdentityToken>"
                f"</AssumeRoleWithWebIdentityResult><ResponseMetadata><RequestId>{_req_id()}</RequestId>"
                f"</ResponseMetadata></AssumeRoleWithWebIdentityResponse>")
        return 200, {"Content-Type": "text/xml"}, body.encode()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 120  # idle keep-alive connections are closed after this

    def setup(self):
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.conns.add(self.connection)

    def finish(self):
        self.server.conns.discard(self.connection)
        try:
            super().finish()
        except OSError:
            pass

    def log_message(self, *a):
        pass

    def do_ANY(self):
        p = self.server.proxy
        body = self._read_body()
        path = self.path
        if path.startswith(("http://", "https://")):  # absolute-form: we are someone's HTTP_PROXY
            path = "/" + path.split("/", 3)[3] if path.count("/") >= 3 else "/"
        url = urllib.parse.urlsplit(path)
        auth = self.headers.get("Authorization", "")
        q = urllib.parse.parse_qs(url.query)
        signed = auth.startswith("AWS4-") or "X-Amz-Signature" in q
        if url.path.startswith("/__proxy/"):
            return self._admin(p, url.path, body)
        if not signed and url.path.startswith("/latest/"):
            return self._imds(p, url.path)
        if not signed and url.path == p.config["container_path"]:
            return self._container(p)

        cred = re.search(r"Credential=([^,]+)", auth)
        scope = (cred.group(1) if cred else q.get("X-Amz-Credential", [""])[0]).split("/")
        akid = scope[0] if len(scope) > 1 else ""
        service = scope[3] if len(scope) > 3 else "sts" if "Action" in q or b"Action=" in body[:200] else "s3"
        params = {}
        target = self.headers.get("X-Amz-Target", "")
        if target:
            op = target.rpartition(".")[2]
        elif service == "s3":
            op = s3_operation(self.command, url.path, url.query, self.headers)
        else:
            form = body.decode("utf-8", "replace") if "form-urlencoded" in self.headers.get("Content-Type", "") else ""
            params = {k: v[0] for k, v in urllib.parse.parse_qs(form or url.query).items()}
            op = params.get("Action", self.command)
        account = p.account_of(akid)
        p.stats_.count(f"{service}:{op}", account)

        if akid in p.expiry and time.time() > p.expiry[akid]:
            with p.stats_.lock:
                p.stats_.expired_served += 1
            return self._send(*canned("expired", service))
        if op == "AssumeRoleWithWebIdentity":
            answer = p.web_identity(params)
            if answer:
                return self._send(*answer)
        if op == "PutLogEvents" and p.config["check_limits"]:
            found = check_put_log_events(body)
            if found:
                p.record_violations(found, account, body)
                return self._send(*aws_error("logs", 400, "InvalidParameterException", found[0][1]))

        fault = p.take_fault(service, op, account)
        if fault and fault["kind"] == "delay":
            time.sleep(float(fault.get("delay", 1.0)))
        if fault and not fault["forward"] and fault["kind"] != "delay":
            return self._fault(fault, service, None)
        answer = self._forward(p, path, body)
        if service == "logs" and answer[0] == 403 and p.config["logs_json_auth_errors"]:
            answer = logs_auth_error_like_aws(answer)
        if op == "AssumeRole":
            answer = p.after_assume_role(params, *answer)
        if op == "PutLogEvents" and answer[0] == 200:
            p.record_ple(body, answer[2])
        if fault and fault["kind"] != "delay":
            return self._fault(fault, service, answer)
        self._send(*answer)

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = do_PATCH = do_OPTIONS = do_ANY

    # ---- plumbing ----------------------------------------------------------
    def _read_body(self):
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            out = bytearray()
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return bytes(out)
                out += self.rfile.read(size)
                self.rfile.readline()
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def _forward(self, p, path, body):
        signed_headers = re.search(r"SignedHeaders=([^,]+)", self.headers.get("Authorization", ""))
        signed_headers = signed_headers.group(1).split(";") if signed_headers else []
        conn = http.client.HTTPConnection(*p.upstream, timeout=300)
        try:
            conn.putrequest(self.command, path, skip_host=True, skip_accept_encoding=True)
            for k, v in self.headers.items():
                lk = k.lower()
                if lk in HOP_BY_HOP or (lk == "expect" and lk not in signed_headers):
                    continue
                conn.putheader(k, v)
            if body or self.command in ("POST", "PUT", "PATCH"):
                conn.putheader("Content-Length", str(len(body)))
            conn.endheaders(body or None)
            r = conn.getresponse()
            data = r.read()
            headers = [(k, v) for k, v in r.getheaders() if k.lower() not in HOP_BY_HOP or
                       (k.lower() == "content-length" and self.command == "HEAD")]
            return r.status, headers, data
        except OSError as e:
            return 502, {"Content-Type": "text/plain"}, f"faultproxy: upstream failed: {e}".encode()
        finally:
            conn.close()

    def _fault(self, fault, service, answer):
        kind = fault["kind"]
        if kind == "throttle" or kind == "expired":
            return self._send(*canned(kind, service, fault))
        if kind == "error":
            return self._send(*canned(int(fault.get("status", 500)), service, fault))
        status, headers, body = answer
        if kind == "malformed":
            style = fault.get("body", "truncated")
            body = body[: len(body) // 2] if style == "truncated" else b"" if style == "empty" else \
                b"\x00\xff<<garbage>>{\"not\": json" + secrets.token_bytes(16)
            return self._send(status, headers, body)
        if kind == "reset":  # promise the whole body, send half, then RST (no body: cut the status line)
            if body:
                self._send(status, headers, body[: len(body) // 2], content_length=len(body))
            else:
                self.wfile.write(b"HTTP/1.1 20")
                self.wfile.flush()
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True
            self.connection.close()
            return
        self._send(status, headers, body)

    def _send(self, status, headers, body, content_length=None):
        items = headers.items() if isinstance(headers, dict) else headers
        if not self.path.startswith("/__proxy/"):
            st = self.server.proxy.stats_
            with st.lock:
                st.status[str(status)] = st.status.get(str(status), 0) + 1
        self.send_response_only(status)
        self.send_header("Date", self.date_time_string())
        has_len = False
        for k, v in items:
            if k.lower() in ("date", "server", "status"):
                continue
            has_len |= k.lower() == "content-length"
            self.send_header(k, v)
        if not has_len and status not in (204, 304):
            self.send_header("Content-Length", str(content_length if content_length is not None else len(body)))
        self._headers_buffer.append(b"\r\n")
        if self.command != "HEAD":
            self._headers_buffer.append(body)
        self.flush_headers()  # one write: no Nagle / delayed-ACK stall

    def _json(self, status, obj):
        self._send(status, {"Content-Type": "application/json"}, json.dumps(obj, default=str).encode())

    def _admin(self, p, path, body):
        try:
            data = json.loads(body) if body else {}
            m = self.command
            if path == "/__proxy/health":
                return self._json(200, {"ok": True})
            if path == "/__proxy/stats" and m == "GET":
                return self._json(200, p.stats())
            if path == "/__proxy/stats/reset" and m == "POST":
                p.reset_stats()
                return self._json(200, {"ok": True})
            if path == "/__proxy/faults":
                if m == "GET":
                    return self._json(200, p.faults())
                if m == "DELETE":
                    p.clear_faults()
                    return self._json(200, {"ok": True})
                if m == "POST":
                    rules = data if isinstance(data, list) else [data]
                    return self._json(200, {"ids": [p.add_fault(**r) for r in rules]})
            if path == "/__proxy/config":
                if m == "POST":
                    p.configure(data)
                return self._json(200, p.config)
            return self._json(404, {"error": f"no admin route {m} {path}"})
        except (ValueError, TypeError) as e:
            return self._json(400, {"error": str(e)})

    def _imds(self, p, path):
        p.stats_.count("imds:" + ("GetToken" if path == "/latest/api/token" else "GetMetadata"), "imds")
        fault = p.take_fault("imds", None, None)
        if fault and fault["kind"] in ("error", "throttle", "expired"):
            return self._fault(fault, "imds", None)
        now = time.time()
        if path == "/latest/api/token":
            ttl = self.headers.get("X-aws-ec2-metadata-token-ttl-seconds", "")
            if self.command != "PUT" or not ttl.isdigit() or not 1 <= int(ttl) <= 21600:
                return self._send(400, {"Content-Type": "text/plain"}, b"Bad Request")
            token = secrets.token_urlsafe(32)
            p.imds_tokens[token] = now + int(ttl)
            return self._send(200, {"Content-Type": "text/plain",
                                    "X-aws-ec2-metadata-token-ttl-seconds": ttl}, token.encode())
        token = self.headers.get("X-aws-ec2-metadata-token")
        if p.imds_tokens.get(token, 0) < now:  # IMDSv1 is disabled: no valid token, no answer
            return self._send(401, {"Content-Type": "text/plain"}, b"Unauthorized")
        ic = p.config["instance_credentials"]
        base = "/latest/meta-data/iam/security-credentials/"
        if path == "/latest/meta-data/placement/region":
            return self._send(200, {"Content-Type": "text/plain"}, p.config["region"].encode())
        if ic and path == base:
            return self._send(200, {"Content-Type": "text/plain"}, ic["role_name"].encode())
        if ic and path == base + ic["role_name"]:
            return self._creds(p, fault, {"Code": "Success", "LastUpdated": _iso(now), "Type": "AWS-HMAC"})
        return self._send(404, {"Content-Type": "text/plain"}, b"Not Found")

    def _container(self, p):
        p.stats_.count("container:GetCredentials", "container")
        fault = p.take_fault("container", None, None)
        if fault and fault["kind"] in ("error", "throttle", "expired"):
            return self._fault(fault, "container", None)
        if p.config["container_token"] and self.headers.get("Authorization") != p.config["container_token"]:
            return self._send(401, {"Content-Type": "application/json"},
                              b'{"code":"AccessDenied","message":"invalid authorization token"}')
        if not p.config["instance_credentials"]:
            return self._send(404, {"Content-Type": "text/plain"}, b"Not Found")
        return self._creds(p, fault, {})

    def _creds(self, p, fault, extra):
        ic = p.config["instance_credentials"]
        exp = p.served_credentials(ic)
        doc = dict(extra, AccessKeyId=ic["access_key_id"], SecretAccessKey=ic["secret_access_key"],
                   Token=ic["session_token"], Expiration=_iso(exp))
        answer = (200, {"Content-Type": "application/json"}, json.dumps(doc).encode())
        if fault:
            if fault["kind"] == "delay":
                time.sleep(float(fault.get("delay", 1.0)))
            else:
                return self._fault(fault, "imds", answer)
        self._send(*answer)


def main():
    ap = argparse.ArgumentParser(description="logferry fault proxy in front of moto")
    ap.add_argument("--upstream", required=True, help="moto endpoint, e.g. http://127.0.0.1:5000")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--config", help="JSON file merged into the config (external_ids, keys, ...)")
    a = ap.parse_args()
    p = FaultProxy(a.upstream, a.port)
    if a.config:
        with open(a.config) as f:
            p.configure(json.load(f))
    p.start()
    print(json.dumps(p.describe()), flush=True)
    signal.signal(signal.SIGTERM, lambda s, f: sys.exit(0))
    try:
        signal.pause()
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        p.stop()


if __name__ == "__main__":
    main()
