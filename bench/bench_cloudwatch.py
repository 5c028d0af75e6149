#!/usr/bin/env python3
"""CloudWatch Logs sink throughput: spool -> agent -> cloudwatch sink -> a
local accept-all CloudWatch Logs endpoint.

What it measures, per run: agent CPU seconds per million records (utime +
stime of every agent thread, from /proc), records/s and PutLogEvents
requests/s from the agent's start to the last event received, mean bytes
per PutLogEvents request (HTTP body, and as CloudWatch counts it: UTF-8
message bytes + 26 per event, the sink's put_bytes counter), and the
agent's peak RSS (VmHWM).

The endpoint is a threaded stdlib HTTP/1.1 server on 127.0.0.1 (a free
port) in this process. It answers every x-amz-json-1.1 call without
checking signatures (PutLogEvents {"nextSequenceToken":"x"} — the sink
ignores tokens —, CreateLogGroup / CreateLogStream / PutRetentionPolicy
{}, DescribeLogGroups {"logGroups":[]}), reads every body fully, and keeps
only counts: requests and bytes per call, events per PutLogEvents
(occurrences of '{"timestamp":', which cannot occur unescaped inside a
JSON string) and the log groups seen. Its own CPU is reported so one can
check it is not the bottleneck (it shares the 2-core VM with the agent).

Credentials are static fake keys in the environment (no role_arn: no
STS; AWS_EC2_METADATA_DISABLED=true). Each run gets a fresh spool filled
by build/bench/spool_fill (~300-byte records, tenant_id = tenant-<i%50>,
one account_id), then the agent starts and drains it (a backlog).

Scenarios (--scenarios, comma-separated):
  t1       one destination: log_group "/bench/${account_id}" (every record
           has the same account_id, so the whole backlog goes to one group
           and stream: "1 tenant")
  t50      log_group "/bench/${tenant_id}": 50 groups, evenly busy
  t50b:R:B t50 with batch_max_records = R and batch_max_bytes = B
           (e.g. t50b:50000:20MB)
Default: t1,t50,t50b:20000:8MB,t50b:50000:20MB,t50b:75000:30MB,
         t50b:100000:40MB

  python3 bench/bench_cloudwatch.py [--build build] [-n 1000000]
        [--scenarios LIST] [--repeat 1] [--timeout 600] [--format json|emf]
        [--concurrency 4] [--flush-interval 1s] [--create-group]
        [--perf] [--perf-top 25] [--dir /tmp]

--perf runs `perf record -g -p <agent>` during each drain and prints the
top symbols by self time (perf perturbs the figures a little; profile in a
separate invocation from the one whose numbers you record).
"""
import argparse
import http.server
import json
import os
import re
import shutil
import signal
import socket
import socketserver
import subprocess
import sys
import tempfile
import threading
import time

TS_MARK = b'{"timestamp":'
GROUP_RE = re.compile(rb'"logGroupName"\s*:\s*"((?:[^"\\]|\\.)*)"')


class Endpoint:
    """Accept-all CloudWatch Logs (x-amz-json-1.1). Keeps counts only."""

    ANSWERS = {
        "PutLogEvents": b'{"nextSequenceToken":"x"}',
        "DescribeLogGroups": b'{"logGroups":[]}',
    }

    def __init__(self):
        self.lock = threading.Lock()
        self.calls = {}      # target -> [requests, body bytes]
        self.events = 0
        self.put_sizes = []  # body bytes of each PutLogEvents
        self.groups = set()
        self.first_put = self.last_put = None
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            rbufsize = 1 << 20

            def setup(self):
                super().setup()
                self.connection.setsockopt(socket.IPPROTO_TCP,
                                           socket.TCP_NODELAY, 1)

            def log_message(self, *a):
                pass

            def answer(self, code, body):
                # Status line, headers and body in one write (no Nagle /
                # delayed-ACK stall between two small writes).
                self.wfile.write(
                    b"HTTP/1.1 %d %s\r\n"
                    b"Content-Type: application/x-amz-json-1.1\r\n"
                    b"x-amzn-RequestId: 00000000-0000-0000-0000-000000000000\r\n"
                    b"Content-Length: %d\r\n\r\n%s"
                    % (code, b"OK" if code == 200 else b"Error", len(body),
                       body))

            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else b""
                if len(body) != n:
                    self.close_connection = True
                    return
                target = self.headers.get("X-Amz-Target", "")
                op = target.rsplit(".", 1)[-1]
                ev = 0
                group = None
                if op == "PutLogEvents":
                    ev = body.count(TS_MARK)
                    m = GROUP_RE.search(body, 0, 2048)
                    group = m.group(1) if m else None
                now = time.monotonic()
                with outer.lock:
                    c = outer.calls.setdefault(op or "?", [0, 0])
                    c[0] += 1
                    c[1] += n
                    if op == "PutLogEvents":
                        outer.events += ev
                        outer.put_sizes.append(n)
                        outer.groups.add(group)
                        if outer.first_put is None:
                            outer.first_put = now
                        outer.last_put = now
                self.answer(200, outer.ANSWERS.get(op, b"{}"))

            def do_GET(self):
                self.answer(404, b'{"__type":"UnknownOperationException"}')

        class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
            daemon_threads = True
            request_queue_size = 64

        self.server = Server(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def proc_stats(pid):
    """(CPU seconds of all threads, VmHWM in MB) of a live process."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    tck = os.sysconf("SC_CLK_TCK")
    cpu = (int(fields[11]) + int(fields[12])) / tck
    rss = 0.0
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                rss = int(line.split()[1]) / 1024
    return cpu, rss


def parse_scenario(s):
    if s == "t1":
        return {"name": s, "group": "/bench/${account_id}", "batch": None}
    if s == "t50":
        return {"name": s, "group": "/bench/${tenant_id}", "batch": None}
    m = re.fullmatch(r"t(1|50)b:(\d+):(\w+)", s)
    if m:
        return {"name": s,
                "group": "/bench/${account_id}" if m.group(1) == "1"
                else "/bench/${tenant_id}",
                "batch": (int(m.group(2)), m.group(3))}
    raise SystemExit("unknown scenario %r (t1, t50, t1b:R:B, t50b:R:B)" % s)


class ChildProc:
    """The only child of a process (the agent under perf), Popen-like."""

    def __init__(self, parent, deadline):
        path = "/proc/%d/task/%d/children" % (parent, parent)
        self.pid = None
        while self.pid is None:
            try:
                with open(path) as f:
                    kids = f.read().split()
            except OSError:
                kids = []
            if kids:
                self.pid = int(kids[0])
            elif time.monotonic() > deadline:
                raise RuntimeError("perf did not start the agent")
            else:
                time.sleep(0.002)
        self.returncode = None

    def poll(self):
        if self.returncode is None:
            try:
                with open("/proc/%d/stat" % self.pid) as f:
                    st = f.read().rsplit(")", 1)[1].split()[0]
            except OSError:
                st = "X"
            if st in ("Z", "X"):
                self.returncode = -1
        return self.returncode

    def terminate(self):
        try:
            os.kill(self.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass

    def kill(self):
        try:
            os.kill(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def wait(self, timeout=None):
        end = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if end is not None and time.monotonic() > end:
                raise subprocess.TimeoutExpired("agent", timeout)
            time.sleep(0.01)
        return self.returncode


def stop(proc, grace=15):
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def tail(path, n=20):
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-n:])
    except OSError:
        return ""


def perf_report(data, top):
    """Top symbols by self time; addresses perf cannot name (stripped
    libraries) are summed per library. Then the total per library."""
    try:
        out = subprocess.run(
            ["perf", "report", "-i", data, "--stdio", "--no-children",
             "--sort", "dso,symbol", "-g", "none", "--percent-limit", "0"],
            capture_output=True, text=True, timeout=300).stdout
    except (OSError, subprocess.TimeoutExpired) as e:
        return "perf report failed: %s" % e
    syms, dsos = {}, {}
    for line in out.splitlines():
        m = re.match(r"\s*([\d.]+)%\s+(\S+)\s+\[(.)\]\s+(\S+)", line)
        if not m:
            continue
        pct, dso, kind, sym = float(m.group(1)), m.group(2), m.group(3), m.group(4)
        if sym.startswith("0x"):
            sym = "(addresses without symbols)"
        syms[(dso, sym)] = syms.get((dso, sym), 0) + pct
        dsos[dso] = dsos.get(dso, 0) + pct
    lines = ["%6.2f%%  %-24s %s" % (v, d, k) for (d, k), v in
             sorted(syms.items(), key=lambda kv: -kv[1])[:top]]
    lines.append("by library: " + ", ".join(
        "%s %.1f%%" % kv for kv in sorted(dsos.items(), key=lambda kv: -kv[1])
        if kv[1] >= 0.5))
    return "\n".join(lines)


def run(args, sc, build):
    ep = Endpoint()
    root = tempfile.mkdtemp(prefix="lf-bench-cwl-", dir=args.dir)
    spool, state = os.path.join(root, "spool"), os.path.join(root, "state")
    conf = os.path.join(root, "bench.conf")
    agent_log = os.path.join(root, "agent.log")
    extra = ""
    if sc["batch"]:
        extra += ' batch_max_records = %d; batch_max_bytes = "%s";' % sc["batch"]
    if args.create_group:
        extra += " create_group = true; retention_days = 30;"
    if args.sink_extra:
        extra += " " + args.sink_extra
    with open(conf, "w") as f:
        f.write('log_level = "warn"; state_dir = "%s"; module_dir = "%s/sinks";\n'
                'spool: { dir = "%s"; };\n'
                'aws: { region = "us-east-1"; };\n'
                'sinks = ( { name = "cwl"; type = "cloudwatch";'
                ' region = "us-east-1"; endpoint = "http://127.0.0.1:%d";'
                ' log_group = "%s"; log_stream = "bench-${hostname}";'
                ' format = "%s"; concurrency = %d; flush_interval = "%s";%s } );\n'
                % (state, build, spool, ep.port, sc["group"], args.format,
                   args.concurrency, args.flush_interval, extra))
    env = {k: v for k, v in os.environ.items()
           if k.lower() not in ("http_proxy", "https_proxy", "all_proxy")
           and not k.startswith("AWS_")}
    env.update(AWS_ACCESS_KEY_ID="AKIABENCHBENCHBENCH0",
               AWS_SECRET_ACCESS_KEY="bench-secret-bench-secret-bench-secret-00",
               AWS_EC2_METADATA_DISABLED="true", AWS_REGION="us-east-1",
               NO_PROXY="127.0.0.1,localhost", no_proxy="127.0.0.1,localhost")
    agent = perf = logf = None
    try:
        subprocess.run([os.path.join(build, "bench", "spool_fill"), spool,
                        str(args.n)], check=True, stdout=subprocess.DEVNULL,
                       timeout=3600)
        size = sum(os.path.getsize(os.path.join(spool, s))
                   for s in os.listdir(spool))
        logf = open(agent_log, "w")
        ep_cpu0 = time.process_time()
        t0 = time.monotonic()
        agent_cmd = [os.path.join(build, "logferry"), "run", "-c", conf]
        if args.perf:
            # perf starts the agent itself, so every thread is sampled from
            # the first instruction; the agent is perf's only child.
            perf = subprocess.Popen(
                ["perf", "record", "-g", "-q", "-o",
                 os.path.join(root, "perf.data"), "--"] + agent_cmd,
                env=env, stderr=logf, stdout=subprocess.DEVNULL)
            agent = ChildProc(perf.pid, t0 + 10)
        else:
            agent = subprocess.Popen(agent_cmd, env=env, stderr=logf,
                                     stdout=subprocess.DEVNULL)
        cpu = rss = 0
        while True:
            time.sleep(0.02)
            if agent.poll() is not None:
                raise RuntimeError("agent exited with %s:\n%s"
                                   % (agent.returncode, tail(agent_log)))
            cpu, rss = proc_stats(agent.pid)
            with ep.lock:
                got = ep.events
            if got >= args.n:
                break
            if time.monotonic() - t0 > args.timeout:
                raise RuntimeError("timeout: %d of %d events after %d s:\n%s"
                                   % (got, args.n, args.timeout,
                                      tail(agent_log)))
        with ep.lock:
            t1 = ep.last_put
        cpu, rss = proc_stats(agent.pid)
        ep_cpu = time.process_time() - ep_cpu0
        time.sleep(1.3)  # status.json is rewritten every second
        counters = {}
        try:
            with open(os.path.join(state, "status.json")) as f:
                counters = json.load(f)["sinks"]["cwl"]
        except (OSError, ValueError, KeyError):
            pass
        with ep.lock:
            events = ep.events
            puts = list(ep.put_sizes)
            calls = {k: tuple(v) for k, v in ep.calls.items()}
            groups = len(ep.groups)
            first = ep.first_put
        stop(agent)
        if perf:  # the agent has exited: perf writes its data and ends
            try:
                perf.wait(120)
            except subprocess.TimeoutExpired:
                stop(perf)
        secs = t1 - t0
        nput = len(puts)
        body = sum(puts)
        cwl_bytes = counters.get("put_bytes", 0)
        puts.sort()
        r = {
            "scenario": sc["name"], "n": args.n, "events": events,
            "groups": groups, "backlog_mb": size / 1e6, "secs": secs,
            "records_s": args.n / secs, "cpu": cpu,
            "cpu_per_m": cpu / args.n * 1e6, "us_per_rec": cpu / args.n * 1e6,
            "rss": rss, "puts": nput, "put_s": nput / secs,
            "req_s": sum(v[0] for v in calls.values()) / secs,
            "mean_body": body / nput if nput else 0,
            "mean_cwl": cwl_bytes / counters.get("put_calls", 1)
            if counters.get("put_calls") else 0,
            "p50_body": puts[nput // 2] if nput else 0,
            "max_body": puts[-1] if nput else 0,
            "ge900k": sum(1 for p in puts if p >= 900_000) / nput if nput else 0,
            "first_put_s": (first - t0) if first else 0,
            "ep_cpu": ep_cpu, "calls": calls, "counters": counters,
            "batch": sc["batch"],
        }
        print_result(r)
        if events != args.n:
            print("  WARNING: endpoint saw %d events for %d records"
                  % (events, args.n))
        if perf:
            print("  perf (self time, top symbols):")
            print("    " + perf_report(os.path.join(root, "perf.data"),
                                       args.perf_top).replace("\n", "\n    "))
        sys.stdout.flush()
        return r
    finally:
        stop(agent)
        stop(perf)
        if logf:
            logf.close()
        ep.close()
        shutil.rmtree(root, ignore_errors=True)


def print_result(r):
    b = r["batch"]
    print("%-18s n=%d groups=%d batch=%s: %.2f s, %.0f records/s, agent CPU "
          "%.2f s = %.2f s per million records (%.2f us/record, %.0f records "
          "per CPU-second), peak RSS %.1f MB, %d PutLogEvents (%.0f/s, %.0f "
          "requests/s in all), mean PutLogEvents body %.0f B (CloudWatch size "
          "%.0f B, p50 %d, max %d, %.0f%% >= 900 KB), endpoint CPU %.2f s, "
          "backlog %.0f MB, first put after %.2f s"
          % (r["scenario"], r["n"], r["groups"],
             "default" if not b else "%d/%s" % b, r["secs"], r["records_s"],
             r["cpu"], r["cpu_per_m"], r["us_per_rec"],
             r["n"] / r["cpu"] if r["cpu"] else 0, r["rss"], r["puts"],
             r["put_s"], r["req_s"], r["mean_body"], r["mean_cwl"],
             r["p50_body"], r["max_body"], 100 * r["ge900k"], r["ep_cpu"],
             r["backlog_mb"], r["first_put_s"]))
    other = {k: v[0] for k, v in r["calls"].items() if k != "PutLogEvents"}
    if other:
        print("  other calls: %s" % ", ".join("%s %d" % kv
                                              for kv in sorted(other.items())))


def main():
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--build", default="build")
    p.add_argument("-n", type=int, default=1_000_000)
    p.add_argument("--scenarios",
                   default="t1,t50,t50b:20000:8MB,t50b:50000:20MB,"
                           "t50b:75000:30MB,t50b:100000:40MB")
    p.add_argument("--repeat", type=int, default=1)
    p.add_argument("--timeout", type=int, default=600,
                   help="seconds per run before the agent is killed")
    p.add_argument("--format", default="json", choices=("json", "emf"))
    p.add_argument("--concurrency", type=int, default=4)
    p.add_argument("--flush-interval", default="1s")
    p.add_argument("--create-group", action="store_true")
    p.add_argument("--sink-extra", default="",
                   help='more sink settings, e.g. "min_request_bytes = 0;"')
    p.add_argument("--perf", action="store_true")
    p.add_argument("--perf-top", type=int, default=25)
    p.add_argument("--dir", default="/tmp")
    p.add_argument("--json", help="also write the results to this file")
    args = p.parse_args()
    build = os.path.abspath(args.build)
    for f in ("logferry", "bench/spool_fill", "sinks/lf_sink_cloudwatch.so"):
        if not os.path.exists(os.path.join(build, f)):
            raise SystemExit("missing %s/%s: build logferry_bin, spool_fill "
                             "and lf_sink_cloudwatch first" % (build, f))
    # SIGTERM/SIGHUP -> exception, so the finally blocks clean up.
    def on_signal(sig, _frame):
        raise KeyboardInterrupt("signal %d" % sig)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    scenarios = [parse_scenario(s) for s in args.scenarios.split(",") if s]
    results = []
    try:
        for _ in range(args.repeat):
            for sc in scenarios:
                results.append(run(args, sc, build))
    except RuntimeError as e:
        raise SystemExit("bench_cloudwatch: %s" % e)
    if args.repeat > 1:
        print("\nmedian of %d runs:" % args.repeat)
        print("| scenario | batch (records/bytes) | records/s | agent CPU s per 1M "
              "records | records per CPU-s | PutLogEvents/s | mean body B | "
              "mean CloudWatch size B | requests >= 900 KB | peak RSS MB |")
        print("|---|---|---|---|---|---|---|---|---|---|")
        for sc in scenarios:
            rs = [r for r in results if r["scenario"] == sc["name"]]
            med = lambda k: sorted(r[k] for r in rs)[len(rs) // 2]
            print("| %s | %s | %.0f | %.2f | %.0f | %.0f | %.0f | %.0f | %.0f%% "
                  "| %.1f |"
                  % (sc["name"], "default" if not sc["batch"]
                     else "%d/%s" % sc["batch"], med("records_s"),
                     med("cpu_per_m"), 1e6 / med("cpu_per_m"), med("put_s"),
                     med("mean_body"), med("mean_cwl"), 100 * med("ge900k"),
                     med("rss")))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1, default=str)


if __name__ == "__main__":
    main()
