"""Damaged spools: garbage in the middle of a segment, a segment cut
mid-frame, a writer killed mid-frame, a segment deleted under the agent.
Every intact record is delivered, the damage is reported by the agent and
by `logferry dump`, and nothing damaged is delivered."""
import json
import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
import lfharness as h  # noqa: E402


def frames(agent, seg):
    """(offset, size, record_id) of each frame, from `logferry dump`."""
    p = subprocess.run([h.BIN, "dump", os.path.join(agent.spool, seg)],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=True)
    out = []
    lines = [json.loads(l) for l in p.stdout.splitlines()]
    for i, l in enumerate(lines):
        end = lines[i + 1]["offset"] if i + 1 < len(lines) else os.path.getsize(
            os.path.join(agent.spool, seg))
        out.append((l["offset"], end - l["offset"], l["record"]["record_id"]))
    return out


class Damage(h.TestCase):
    def test_garbage_and_truncation(self):
        a = self.agent()
        recs1 = [h.record(i, writer=1) for i in range(3000)]
        recs2 = [h.record(i, writer=2) for i in range(3000)]
        a.emit_json(recs1)
        a.emit_json(recs2)
        seg1, seg2 = a.segments()
        f1 = frames(a, seg1)
        f2 = frames(a, seg2)
        # Overwrite 500 bytes in the middle of segment 1 with garbage.
        g_off, g_len = f1[1000][0] + 7, 500
        with open(os.path.join(a.spool, seg1), "r+b") as f:
            f.seek(g_off)
            f.write(os.urandom(g_len))
        hit1 = {rid for off, size, rid in f1
                if off < g_off + g_len and off + size > g_off}
        # Cut segment 2 in the middle of frame 2000.
        cut = f2[2000][0] + f2[2000][1] // 2
        os.truncate(os.path.join(a.spool, seg2), cut)
        hit2 = {rid for off, size, rid in f2 if off + size > cut}
        expect = ({r["record_id"] for r in recs1} - hit1) | (
            {r["record_id"] for r in recs2} - hit2)
        self.assertTrue(1 <= len(hit1) <= 5, hit1)
        self.assertEqual(len(hit2), 1000)

        # dump reports both damaged regions and exits 3.
        p = subprocess.run(a.cmd("dump"), stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE)
        self.assertEqual(p.returncode, 3, p.stderr.decode())
        damage = [json.loads(l) for l in p.stdout.splitlines()
                  if b'"damage"' in l]
        self.assertEqual(len(damage), 2, damage)
        self.assertEqual(damage[0]["segment"], seg1)
        self.assertLessEqual(damage[0]["damage"]["offset"], g_off)
        self.assertEqual(damage[1]["segment"], seg2)
        self.assertTrue(damage[1]["damage"]["tail"])
        self.assertIn("2 damaged regions", p.stderr.decode())

        a.start()
        got = a.wait_delivered(len(expect))
        time.sleep(0.5)
        got = a.delivered()
        ids = {r["record_id"] for r in got}
        self.assertEqual(ids, expect, "intact records missing or damaged delivered")
        self.assertEqual(a.stop(), 0)
        log = a.log_text()
        self.assertIn("corrupt region skipped", log)
        self.assertIn("segment=%s" % seg1, log)
        self.assertIn("tail skipped", log)

    def test_writer_killed_mid_frame(self):
        a = self.agent()
        a.start()
        # A writer that stays alive (holding its segment lock) until killed.
        p = subprocess.Popen(a.cmd("emit", "--json"), stdin=subprocess.PIPE,
                             stderr=subprocess.PIPE)
        first = [h.record(i, writer=3) for i in range(100)]
        p.stdin.write("".join(json.dumps(r) + "\n" for r in first).encode())
        p.stdin.flush()
        # Wait for the group commit to put them in the segment.
        a.wait_delivered(100)
        seg = a.segments()[-1]
        # The writer dies while a frame is half written: append the first
        # half of a valid frame, as a killed write() would leave it, then
        # kill -9 the writer. Until then the tail is "being written".
        with open(os.path.join(a.spool, seg), "rb") as f:
            whole = f.read()
        last = frames(a, seg)[-1]
        frame = whole[last[0]:last[0] + last[1]]
        with open(os.path.join(a.spool, seg), "ab") as f:
            f.write(frame[:len(frame) // 2])
        time.sleep(0.5)
        self.assertNotIn("tail skipped", a.log_text(),
                         "a live writer's tail was taken for damage")
        p.kill()
        p.wait()
        # The agent notices the writer is gone, skips the torn tail and
        # goes on with records from other writers.
        deadline = time.time() + 30
        while "tail skipped" not in a.log_text() and time.time() < deadline:
            time.sleep(0.1)
        self.assertIn("tail skipped", a.log_text())
        more = [h.record(i, writer=4) for i in range(200)]
        a.emit_json(more)
        got = a.wait_delivered(300)
        self.assertEqual(len({r["record_id"] for r in got}), 300)
        self.assertEqual(a.stop(), 0)

    def test_segment_deleted_under_agent_and_bad_header(self):
        a = self.agent(sinks='{ name = "local"; type = "file"; path = "%s"; }'
                       % os.path.join(self.root, "out", "records.ndjson"))
        # Not a segment at all, with the segment suffix.
        with open(os.path.join(a.spool if os.path.isdir(a.spool) else
                               (os.makedirs(a.spool) or a.spool),
                               "0000000000000001-0000000000000001-00000001.lfs"),
                  "wb") as f:
            f.write(b"this is not a logferry segment" * 10)
        a.emit_json([h.record(i) for i in range(10)])
        a.start()
        a.wait_delivered(10)
        self.assertIn("segment unreadable, skipped", a.log_text())
        self.assertIn("0000000000000001-0000000000000001-00000001.lfs", a.log_text())
        self.assertIsNone(a.proc.poll())
        self.assertEqual(a.stop(), 0)

    def test_segment_deleted_before_delivery(self):
        # A sink that cannot deliver (its file is on a full device) holds
        # its first batch; an operator deletes the segment meanwhile. The
        # agent stops cleanly, and on restart says what was lost.
        a = self.agent(sinks='{ name = "local"; type = "file"; '
                             'path = "/dev/full"; batch_max_records = 5; '
                             'backoff_cap = "100ms"; }')
        a.emit_json([h.record(i) for i in range(10)])
        a.start()
        time.sleep(0.5)
        for s in a.segments():
            os.unlink(os.path.join(a.spool, s))
        self.assertEqual(a.stop(), 0)
        a.write_conf('{ name = "local"; type = "file"; path = "%s"; }' % a.out)
        a.emit_json([h.record(i) for i in range(10, 20)])
        a.start()
        got = a.wait_delivered(10)
        self.assertEqual({r["record_id"] for r in got},
                         {h.record(i)["record_id"] for i in range(10, 20)})
        self.assertIn("segment removed before it was delivered", a.log_text())
        self.assertIn("delivered_up_to=0", a.log_text())
        self.assertEqual(a.stop(), 0)

    def test_bad_config_and_missing_module(self):
        a = self.agent(sinks='{ name = "x"; type = "nosuch"; },'
                             '{ name = "y"; type = "file"; rotate_bytes = "lots"; '
                             '  colour = "red"; }')
        p = subprocess.run(a.cmd("check"), stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE)
        self.assertEqual(p.returncode, 1)
        err = p.stderr.decode()
        self.assertIn("lf_sink_nosuch.so", err)
        self.assertIn("sinks[y].rotate_bytes", err)
        self.assertIn("sinks[y].colour: unknown key", err)
        self.assertIn("sinks[y].path: required key is missing", err)
        self.assertIn(a.conf + ":", err)
        p = subprocess.run(a.cmd("run"), stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=30)
        self.assertEqual(p.returncode, 1)
        self.assertIn("configuration has errors", p.stderr.decode())

    def test_invalid_utf8_and_huge_strings(self):
        a = self.agent()
        big = "x" * (1024 * 1024)
        recs = [h.record(0, prompt=big), h.record(1)]
        a.emit_json(recs)
        a.start()
        got = a.wait_delivered(2)
        self.assertEqual(len(got[0]["prompt_text"]) if got[0]["record_id"] ==
                         recs[0]["record_id"] else len(got[1]["prompt_text"]),
                         len(big))
        self.assertEqual(a.stop(), 0)


if __name__ == "__main__":
    h.main()
