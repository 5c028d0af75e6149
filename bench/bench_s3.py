#!/usr/bin/env python3
"""S3 sink throughput: records per agent CPU-second, compression ratio and
peak RSS, on the bench corpus (bench/spool_fill: ~300-byte records, 50
tenants) at the default compression level.

The agent uploads to a tiny accept-all S3 endpoint on 127.0.0.1 (this
script: PutObject, the multipart calls, ListMultipartUploads; bodies are
counted and dropped), because moto (~20 MB/s) would be the bottleneck.
Credentials are static test keys in the environment; no role, no STS.

Scenario "backlog": spool_fill writes N records first, then the agent
starts and drains them: rendering, compression, staging (WAL fdatasync),
rolling and upload. The clock stops when the endpoint has received
all N records (x-amz-meta-logferry-records). CPU = the agent's utime +
stime from /proc; RSS = VmHWM.

  python3 bench/bench_s3.py [--build build] [-n 1000000]
        [--compression zstd|gzip|none] [--level 0] [--roll-age 5s]
        [--key-template '...'] [--no-fsync] [--batch RECORDS]
"""
import argparse
import http.server
import json
import os
import re
import shutil
import socketserver
import subprocess
import tempfile
import threading
import time


class Endpoint:
    """Accept-all S3: answers what the sink asks, keeps only counts."""

    def __init__(self):
        self.lock = threading.Lock()
        self.records = self.objects = self.bytes = self.requests = 0
        self.uploads = {}
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def reply(self, code, body=b"", headers=()):
                self.send_response(code)
                for k, v in headers:
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def body(self):
                n = int(self.headers.get("Content-Length") or 0)
                left = n
                while left:
                    left -= len(self.rfile.read(min(left, 1 << 20)))
                return n

            def do_PUT(self):
                n = self.body()
                with outer.lock:
                    outer.requests += 1
                    outer.bytes += n
                    if "uploadId=" not in self.path:
                        outer.objects += 1
                        outer.records += int(self.headers.get(
                            "x-amz-meta-logferry-records", 0))
                self.reply(200, headers=[("ETag", '"%08x"' % n)])

            def do_POST(self):
                self.body()
                m = re.search(r"uploadId=([^&]+)", self.path)
                with outer.lock:
                    outer.requests += 1
                    if m:  # complete
                        outer.objects += 1
                        outer.records += outer.uploads.pop(m.group(1), 0)
                        body = b"<CompleteMultipartUploadResult/>"
                    else:
                        uid = "u%d" % outer.requests
                        outer.uploads[uid] = int(self.headers.get(
                            "x-amz-meta-logferry-records", 0))
                        body = ("<InitiateMultipartUploadResult><UploadId>%s"
                                "</UploadId></InitiateMultipartUploadResult>"
                                % uid).encode()
                self.reply(200, body)

            def do_DELETE(self):
                self.reply(204)

            def do_GET(self):
                self.reply(200, b"<ListMultipartUploadsResult><IsTruncated>"
                                b"false</IsTruncated></ListMultipartUploadsResult>")

        class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
            daemon_threads = True

        self.server = Server(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()


def proc_stats(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    tck = os.sysconf("SC_CLK_TCK")
    cpu = (int(fields[11]) + int(fields[12])) / tck
    rss = 0
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                rss = int(line.split()[1]) // 1024
    return cpu, rss


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--build", default="build")
    p.add_argument("-n", type=int, default=1_000_000)
    p.add_argument("--compression", default="zstd")
    p.add_argument("--level", type=int, default=0)
    p.add_argument("--roll-age", default="5s")
    p.add_argument("--key-template", default=None)
    p.add_argument("--no-fsync", action="store_true")
    p.add_argument("--batch", type=int, default=0)
    p.add_argument("--dir", default="/tmp")
    args = p.parse_args()
    build = os.path.abspath(args.build)

    ep = Endpoint()
    root = tempfile.mkdtemp(prefix="lf-bench-s3-", dir=args.dir)
    spool, state = os.path.join(root, "spool"), os.path.join(root, "state")
    conf = os.path.join(root, "bench.conf")
    extra = ""
    if args.key_template:
        extra += ' key_template = "%s";' % args.key_template
    if args.batch:
        extra += ' batch_max_records = %d; batch_max_bytes = "%dMB";' % (args.batch, max(4, args.batch // 1000))
    if args.no_fsync:
        extra += " fsync = false;"
    with open(conf, "w") as f:
        f.write('log_level = "warn"; state_dir = "%s"; module_dir = "%s/sinks";\n'
                'spool: { dir = "%s"; };\n'
                'aws: { region = "us-east-1"; };\n'
                'sinks = ( { name = "s3"; type = "s3"; bucket = "bench-bucket";'
                ' region = "us-east-1"; endpoint = "http://127.0.0.1:%d";'
                ' path_style = true; compression = "%s"; compression_level = %d;'
                ' roll_age = "%s";%s } );\n'
                % (state, build, spool, ep.port, args.compression, args.level,
                   args.roll_age, extra))
    env = dict(os.environ, AWS_ACCESS_KEY_ID="AKIABENCHBENCHBENCH0",
               AWS_SECRET_ACCESS_KEY="bench-secret-bench-secret-bench-secret-00",
               NO_PROXY="127.0.0.1")
    try:
        subprocess.run([os.path.join(build, "bench", "spool_fill"), spool,
                        str(args.n)], check=True, stdout=subprocess.DEVNULL)
        size = sum(os.path.getsize(os.path.join(spool, s)) for s in os.listdir(spool))
        t0 = time.time()
        agent = subprocess.Popen([os.path.join(build, "logferry"), "run", "-c", conf],
                                 env=env)
        while True:
            time.sleep(0.05)
            cpu, rss = proc_stats(agent.pid)
            with ep.lock:
                done = ep.records >= args.n
            if done:
                break
            if agent.poll() is not None:
                raise SystemExit("agent exited with %s" % agent.returncode)
        t1 = time.time()
        cpu, rss = proc_stats(agent.pid)
        time.sleep(1.2)  # one more status.json with the final counters
        with open(os.path.join(state, "status.json")) as f:
            c = json.load(f)["sinks"]["s3"]
        agent.terminate()
        agent.wait()
        secs = t1 - t0
        print("s3 backlog n=%d compression=%s level=%s: %.2f s, %.0f records/s, "
              "agent CPU %.2f s (%.0f records per CPU-second), peak RSS %d MB, "
              "spool %.0f MB, NDJSON %.0f MB -> %.1f MB (ratio %.1f), "
              "%d objects, %d requests (wall time includes up to roll_age=%s for the last objects)"
              % (args.n, args.compression, args.level or "default", secs,
                 args.n / secs, cpu, args.n / cpu if cpu else 0, rss,
                 size / 1e6, c.get("bytes_in", 0) / 1e6,
                 c.get("bytes_out", 0) / 1e6,
                 c.get("bytes_in", 0) / max(1, c.get("bytes_out", 1)),
                 ep.objects, ep.requests,
                 args.roll_age))
    finally:
        ep.close()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
