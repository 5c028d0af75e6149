#!/usr/bin/env python3
"""End-to-end throughput and memory of the agent: spool -> file sink.

Two scenarios, each on a fresh spool under --dir (default /tmp):
  live     one writer process appends N records (interval durability) while
           the agent delivers them; measures records/s from the first append
           to the last record in the output file.
  backlog  the spool is filled first (N records), then the agent starts and
           drains it (replay after an outage); measures drain records/s.
Both report the agent's CPU seconds (utime+stime from /proc) and its peak
RSS (VmHWM); live also the writer's CPU and this script's own CPU while it
watched. The file sink writes a real file with fsync per batch unless
--null is given (then /dev/null, fsync off: the agent's own cost).

The clock stops when the output file's last line is the writer's last
record (spool_fill numbers request_id req-<i in hex>; a clean run delivers
in spool order), checked by reading only the file's tail, so watching costs
next to no CPU on this 2-core machine; the lines are counted once after
the clock stopped and must be N. With --null it stops when the sink's
cursor marks every segment finished (not when the GC has deleted them,
which waits for the next 1 s rescan).

  python3 bench/bench_e2e.py [--build build] [-n 1000000] [--null]
                             [--scenario live|backlog|both] [--linger MS]
                             [--prefetch auto|on|off]
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time


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


def last_line(path):
    """The last complete line of path (bytes), or b"" (reads the tail only)."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            if size == 0:
                return b""
            f.seek(max(0, size - 8192))
            tail = f.read()
    except FileNotFoundError:
        return b""
    end = tail.rfind(b"\n")
    if end < 0:
        return b""
    return tail[tail.rfind(b"\n", 0, end) + 1:end]


def cursor_finished(cursor, spool):
    """Whether the cursor marks every segment now in the spool as done."""
    try:
        with open(cursor) as f:
            done = {l.split()[1] for l in f if l.startswith("seg ") and l.split()[3] == "1"}
        segs = [s for s in os.listdir(spool) if s.endswith(".lfs")]
    except (FileNotFoundError, IndexError):
        return False
    return all(s in done for s in segs)


def count_lines(path):
    if not os.path.exists(path):
        return 0
    n = 0
    with open(path, "rb") as f:
        while True:
            b = f.read(1 << 22)
            if not b:
                return n
            n += b.count(b"\n")


def run(args, scenario):
    root = tempfile.mkdtemp(prefix="lf-bench-", dir=args.dir)
    spool, state = os.path.join(root, "spool"), os.path.join(root, "state")
    out = "/dev/null" if args.null else os.path.join(root, "out.ndjson")
    conf = os.path.join(root, "bench.conf")
    with open(conf, "w") as f:
        f.write('log_level = "warn"; state_dir = "%s"; module_dir = "%s/sinks";\n'
                'spool: { dir = "%s"; };\n'
                'sinks = ( { name = "f"; type = "file"; path = "%s"; fsync = %s;'
                ' rotate_bytes = 0; batch_max_records = %d;%s%s } );\n'
                % (state, args.build, spool, out, "false" if args.null else "true",
                   args.batch, "" if args.linger < 0 else
                   ' batch_linger = "%dms";' % args.linger,
                   "" if args.prefetch is None else
                   ' batch_prefetch = "%s";' % args.prefetch))
    fill = [os.path.join(args.build, "bench", "spool_fill"), spool, str(args.n)]
    agent_cmd = [os.path.join(args.build, "logferry"), "run", "-c", conf]
    try:
        if scenario == "backlog":
            subprocess.run(fill, check=True, stdout=subprocess.DEVNULL)
            size = sum(os.path.getsize(os.path.join(spool, s)) for s in os.listdir(spool))
            t0 = time.time()
            agent = subprocess.Popen(agent_cmd)
        else:
            size = None
            agent = subprocess.Popen(agent_cmd)
            time.sleep(0.3)
            t0 = time.time()
            writer = subprocess.Popen(fill, stdout=subprocess.DEVNULL)
        cursor = os.path.join(state, "cursors", "f.cursor")
        # The last record spool_fill writes (see spool_fill.c).
        last = b'"request_id":"req-%016x"' % (args.n - 1)
        self0 = os.times()
        writer_cpu = None
        while True:
            time.sleep(0.01)
            if scenario == "live" and writer_cpu is None:
                pid, status, ru = os.wait4(writer.pid, os.WNOHANG)
                if pid:
                    writer_cpu = ru.ru_utime + ru.ru_stime
                    if status:
                        sys.exit("spool_fill failed")
            if args.null:
                # No output to read: done when every segment is finished.
                if scenario == "live" and writer_cpu is None:
                    continue
                if cursor_finished(cursor, spool):
                    break
            elif last in last_line(out):
                break
        t1 = time.time()
        self1 = os.times()
        cpu, rss = proc_stats(agent.pid)
        agent.terminate()
        agent.wait()
        if scenario == "live" and writer_cpu is None:
            _, _, ru = os.wait4(writer.pid, 0)
            writer_cpu = ru.ru_utime + ru.ru_stime
        if not args.null:
            lines = count_lines(out)
            if lines != args.n:
                sys.exit("%s: %d lines in the output, expected %d"
                         % (scenario, lines, args.n))
        secs = t1 - t0
        watch = (self1.user + self1.system) - (self0.user + self0.system)
        print("%-8s n=%d sink=%s batch=%d: %.2f s, %.0f records/s, agent CPU %.2f s "
              "(%.0f records per CPU-second), agent peak RSS %d MB%s%s, bench CPU %.2f s"
              % (scenario, args.n, "null" if args.null else "file+fsync", args.batch,
                 secs, args.n / secs, cpu, args.n / cpu if cpu else 0, rss,
                 "" if size is None else ", backlog %.0f MB" % (size / 1e6),
                 "" if writer_cpu is None else ", writer CPU %.2f s" % writer_cpu,
                 watch))
    finally:
        shutil.rmtree(root, ignore_errors=True)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--build", default="build")
    p.add_argument("-n", type=int, default=1_000_000)
    p.add_argument("--batch", type=int, default=4096)
    p.add_argument("--null", action="store_true")
    p.add_argument("--linger", type=int, default=-1,
                   help="batch_linger in ms (default: the file sink's, 20 ms)")
    p.add_argument("--prefetch", choices=("auto", "on", "off"),
                   help="batch_prefetch (default: not set, i.e. auto)")
    p.add_argument("--dir", default="/tmp")
    p.add_argument("--scenario", default="both")
    args = p.parse_args()
    args.build = os.path.abspath(args.build)
    for s in (["live", "backlog"] if args.scenario == "both" else [args.scenario]):
        run(args, s)


if __name__ == "__main__":
    main()
