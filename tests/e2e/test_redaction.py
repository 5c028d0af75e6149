"""Redaction in the agent, before any sink or dead letter sees a record:
top-level rules for every record, per-sink rules (one archive keeps hashed
prompts, another receives none), unrouted dead letters redacted too; a bad
regex or unknown field fails `logferry check` with file:line."""
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(__file__))
import lfharness as h  # noqa: E402

EMAIL = "jane.doe@example.com"
CARD = "4111 1111 1111 1111"


class Redaction(h.TestCase):
    def test_global_and_per_sink_rules(self):
        key = os.path.join(self.root, "hmac.key")
        with open(key, "wb") as f:
            f.write(b"0123456789abcdef0123456789abcdef")
        o = os.path.join(self.root, "out")
        sinks = ('{ name = "archive"; type = "file"; path = "%s/archive.ndjson";'
                 '  redact = ( { name = "hashprompt"; fields = ["prompt_text"];'
                 '               action = "hash"; key_file = "%s"; } ); },'
                 '{ name = "cw"; type = "file"; path = "%s/cw.ndjson";'
                 '  redact = ( { name = "noprompt"; fields = ["prompt_text", '
                 '               "completion_text"]; action = "drop"; } ); }'
                 % (o, key, o))
        extra = ('redact = ( { name = "pii"; fields = ["*text", "attributes.*"];'
                 ' detect = ["email", "card"]; action = "mask"; } );\n'
                 'routes = ( { name = "all"; match = { tenant_id = "t-*"; };'
                 ' sinks = ["archive", "cw"]; } );')
        a = self.agent(sinks=sinks, extra=extra)
        recs = []
        for i in range(50):
            r = h.record(i, tenant="t-%d" % (i % 3),
                         prompt="contact %s or pay with %s please" % (EMAIL, CARD))
            r["completion_text"] = "sure, " + EMAIL
            r["error_message"] = "card %s declined" % CARD
            r["attributes"]["email"] = EMAIL
            recs.append(r)
        unrouted = h.record(99, tenant="nobody", prompt="mail me at " + EMAIL)
        a.emit_json(recs + [unrouted])
        a.start()
        arch = a.wait_delivered(50, path=os.path.join(o, "archive.ndjson"))
        cw = a.wait_delivered(50, path=os.path.join(o, "cw.ndjson"))
        self.assertEqual(a.stop(), 0)
        for r in arch + cw:
            blob = json.dumps(r)
            self.assertNotIn(EMAIL, blob)
            self.assertNotIn(CARD, blob)
            self.assertNotIn("4111", blob)
        # The archive keeps a stable hash of the (already masked) prompt;
        # equal prompts hash equal.
        hashes = {r["prompt_text"] for r in arch}
        self.assertEqual(len(hashes), 1)
        self.assertTrue(next(iter(hashes)).startswith("hmac:"))
        self.assertTrue(all("prompt_text" not in r and "completion_text" not in r
                            for r in cw), "cw must receive no prompt text")
        self.assertTrue(all("[REDACTED]" in r["error_message"] for r in cw))
        # Dead letters are redacted too.
        p = subprocess.run(a.cmd("dump", "--dead-letter"), stdout=subprocess.PIPE)
        self.assertIn(b"nobody", p.stdout)
        self.assertNotIn(EMAIL.encode(), p.stdout)
        # Counters per rule; no content in the log.
        st = subprocess.run(a.cmd("status"), stdout=subprocess.PIPE).stdout.decode()
        self.assertIn("redact.pii=", st)
        self.assertIn("redact.hashprompt=", st)
        self.assertNotIn(EMAIL, a.log_text())

    def test_bad_rules_fail_check(self):
        a = self.agent(extra='redact = ( { name = "r1"; fields = ["prompt_text"];'
                             ' patterns = ["(unclosed"]; action = "mask"; },'
                             ' { name = "r2"; fields = ["colour"]; action = "drop"; } );')
        p = subprocess.run(a.cmd("check"), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.assertEqual(p.returncode, 1)
        err = p.stderr.decode()
        self.assertIn(a.conf + ":", err)
        self.assertIn("r1", err)


if __name__ == "__main__":
    h.main()
