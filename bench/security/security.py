#!/usr/bin/env python3
"""Helpers for bench/security/run (standard library only).

Reuses bench/sidecar/bench.py for what both benches do the same way (free
ports, h2load summaries and latency logs, records, medians' percentile).

  security.py ports N                       N free TCP ports on 127.0.0.1
  security.py parse-h2load OUT LOG WORKLOAD SYSTEM DURATION_S ROUND
                                            req/s and latencies of one timed h2load run
  security.py tls-check OUT WORKLOAD SYSTEM PROTOCOL CIPHER GROUP ALPN
                                            what h2load negotiated (tls_pinned 1/0 + a note)
  security.py parse-handshakes WORKLOAD SYSTEM WORKERS ROUND OUT...
                                            full TLS handshakes/s over h2load bursts
  security.py parse-register JSON WORKLOAD ROUND
                                            registrations/s from cairn_registry_bench --json
  security.py record WORKLOAD SYSTEM METRIC VALUE UNIT [NOTE]
  security.py report RESULTS.jsonl [--json FILE]
                                            tables, the issue's goals, optional JSON array
  security.py selftest                      table tests of the parsers (ctest)

Records are {"workload", "system", "metric", "value", "unit"} (+ "note", and
"round" for a per-round figure). A system that could not be measured gets
metric "failed" (value 1, the reason in "note").
"""

import json
import os
import re
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "sidecar"))
import bench  # noqa: E402  (bench/sidecar/bench.py)

rec, emit, tail = bench.rec, bench.emit, bench.tail
SYSTEMS = ["nginx", "haproxy", "cairn"]


def cmd_parse_h2load(out, log, workload, system, duration_s, round_no):
    bench.cmd_parse_h2load(out, log, workload, system, duration_s, round_no)


def negotiated(text):
    """The TLS parameters h2load printed for its first connection."""
    def field(name):
        m = re.search(r"^" + re.escape(name) + r": (.+)$", text, re.M)
        return m.group(1).strip() if m else "?"
    group = (field("Server Temp Key").split() or ["?"])[0]
    return field("TLS Protocol"), field("Cipher"), group, field("Application protocol")


def cmd_tls_check(out, workload, system, protocol, cipher, group, alpn):
    """Records whether the connection used exactly the pinned parameters.

    A mismatch is a failure of equal terms, not of the system: the record
    says what was negotiated instead, and the run's exit status shows it.
    """
    text = open(out, errors="replace").read()
    got = negotiated(text)
    want = (protocol, cipher, group, alpn)
    ok = got == want
    note = " ".join(got) if ok else f"negotiated {' '.join(got)}, pinned {' '.join(want)}"
    emit([rec(workload, system, "tls_pinned", 1 if ok else 0, "bool", note)])


def cmd_parse_handshakes(workload, system, workers, round_no, *outs):
    """Sums h2load bursts in which every client made one connection.

    Each burst is `h2load -cN -nN`: N clients, one request each, so N fresh
    TLS connections with full handshakes (a new client has no session to
    resume). Rate = successful requests / the bursts' own durations.
    """
    done, secs, failed, errors = 0, 0.0, 0, []
    for out in outs:
        text = open(out, errors="replace").read()
        m = re.search(r"finished in ([\d.]+)(m?s), ", text)
        r = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, "
                      r"(\d+) failed", text)
        if not (m and r):
            errors.append(tail(text, 200))
            continue
        secs += float(m.group(1)) / (1000.0 if m.group(2) == "ms" else 1.0)
        done += int(r.group(4))
        failed += int(r.group(5))
    if done == 0 or secs <= 0:
        # Not "failed": that would void the system's other figures of WORKLOAD.
        emit([rec(workload, system, "handshakes_failed", 1, "bool",
                  "no handshake completed: " + (errors[0] if errors else "no burst ran"))])
        return
    rate = done / secs
    emit(bench.with_round([
        rec(workload, system, "handshakes_per_s", round(rate, 1), "1/s"),
        rec(workload, system, "handshakes_per_s_per_worker", round(rate / int(workers), 1), "1/s"),
        rec(workload, system, "handshake_errors", failed + len(errors), "count"),
    ], round_no))


def cmd_parse_register(json_file, workload, round_no):
    """cairn_registry_bench's `register` figures as this bench's records."""
    try:
        with open(json_file) as f:
            records = json.load(f)
    except (OSError, ValueError) as e:
        emit([rec(workload, "cairn", "failed", 1, "bool", f"no registry bench JSON: {e}")])
        return
    get = {r["metric"]: r["value"] for r in records
           if r.get("workload") == "register" and r.get("system") == "cairn"}
    if not get.get("registrations_per_s") or get.get("errors", 1) != 0:
        emit([rec(workload, "cairn", "failed", 1, "bool",
                  f"registry bench: {get.get('instances', 0)} instances, "
                  f"{get.get('errors', '?')} errors")])
        return
    emit(bench.with_round([
        rec(workload, "cairn", "req_per_s", round(get["registrations_per_s"], 1), "registrations/s"),
        rec(workload, "cairn", "latency_p50_ms", get["register_latency_p50_ms"], "ms"),
        rec(workload, "cairn", "latency_p99_ms", get["register_latency_p99_ms"], "ms"),
        rec(workload, "cairn", "errors", get["errors"], "count"),
    ], round_no))


# ---------------------------------------------------------------- self-test

H2LOAD_OK = """starting benchmark...
TLS Protocol: TLSv1.3
Cipher: TLS_AES_128_GCM_SHA256
Server Temp Key: X25519 253 bits
Application protocol: h2
finished in 250.00ms, 800.00 req/s, 100KB/s
requests: 200 total, 200 started, 200 done, 200 succeeded, 0 failed, 0 errored, 0 timeout
status codes: 200 2xx, 0 3xx, 0 4xx, 0 5xx
"""


def cmd_selftest():
    """Table tests of the parsers on good, mismatched and broken tool output.

    Run by ctest (security_bench_parsers); exits non-zero on the first wrong
    answer. No network, no server.
    """
    import contextlib
    import io
    import tempfile

    def run(fn, *args):
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            fn(*args)
        return [json.loads(line) for line in buf.getvalue().splitlines() if line.strip()]

    def metric(records, name):
        return next((r for r in records if r["metric"] == name), None)

    problems = []

    def expect(what, ok):
        if not ok:
            problems.append(what)

    with tempfile.TemporaryDirectory() as d:
        def f(name, text):
            path = os.path.join(d, name)
            with open(path, "w") as out:
                out.write(text)
            return path

        pin = ("TLSv1.3", "TLS_AES_128_GCM_SHA256", "X25519", "h2")
        tls_cases = [  # (h2load output, tls_pinned expected)
            (H2LOAD_OK, 1),
            (H2LOAD_OK.replace("TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384"), 0),
            (H2LOAD_OK.replace("X25519 253 bits", "ECDH, prime256v1, 256 bits"), 0),
            (H2LOAD_OK.replace("TLSv1.3", "TLSv1.2"), 0),
            (H2LOAD_OK.replace("Application protocol: h2", "Application protocol: http/1.1"), 0),
            ("", 0),  # h2load printed nothing (did not connect)
            ("TLS Protocol:\nCipher\n", 0),  # truncated lines
            ("Server Temp Key: \n", 0),  # empty value
            ("Server Temp Key:   \n", 0),  # blank value
        ]
        for i, (text, want) in enumerate(tls_cases):
            r = run(cmd_tls_check, f(f"tls{i}", text), "https", "x", *pin)
            expect(f"tls-check case {i}: want tls_pinned {want}, got {r}",
                   len(r) == 1 and r[0]["metric"] == "tls_pinned" and r[0]["value"] == want)

        good = f("burst_ok", H2LOAD_OK)
        r = run(cmd_parse_handshakes, "https", "x", "2", "1", good, good)
        hs = metric(r, "handshakes_per_s")
        expect(f"two bursts of 200 in 250 ms: want 800/s, got {r}", hs and hs["value"] == 800.0)
        pw = metric(r, "handshakes_per_s_per_worker")
        expect(f"per worker: want 400/s, got {r}", pw and pw["value"] == 400.0)
        expect("round tag", hs and hs.get("round") == 1)
        r = run(cmd_parse_handshakes, "https", "x", "2", "1", good, f("burst_bad", "garbage\n"))
        expect(f"a broken burst counts as an error: {r}",
               metric(r, "handshake_errors") and metric(r, "handshake_errors")["value"] == 1
               and metric(r, "handshakes_per_s")["value"] == 800.0)
        for name, text in (("none", ""), ("zero", H2LOAD_OK.replace("200 succeeded", "0 succeeded"))):
            r = run(cmd_parse_handshakes, "https", "x", "2", "1", f(name, text))
            expect(f"no handshake ({name}): want handshakes_failed, got {r}",
                   len(r) == 1 and r[0]["metric"] == "handshakes_failed")
        slow = f("burst_s", H2LOAD_OK.replace("250.00ms", "2.00s"))
        r = run(cmd_parse_handshakes, "https", "x", "2", "1", slow)
        expect(f"seconds unit: want 100/s, got {r}", metric(r, "handshakes_per_s")["value"] == 100.0)

        reg = [{"workload": "register", "system": "cairn", "metric": m, "value": v, "unit": "u"}
               for m, v in (("registrations_per_s", 1234.5), ("register_latency_p50_ms", 1.0),
                            ("register_latency_p99_ms", 2.0), ("instances", 2000), ("errors", 0))]
        r = run(cmd_parse_register, f("reg.json", json.dumps(reg)), "register_tls", "2")
        expect(f"register: want req_per_s 1234.5, got {r}",
               metric(r, "req_per_s") and metric(r, "req_per_s")["value"] == 1234.5
               and metric(r, "latency_p99_ms")["value"] == 2.0)
        bad_reg = [dict(x, value=3) if x["metric"] == "errors" else x for x in reg]
        for name, text in (("missing", None), ("notjson", "{"), ("errors", json.dumps(bad_reg)),
                           ("empty", "[]")):
            path = os.path.join(d, "absent.json") if text is None else f(name, text)
            r = run(cmd_parse_register, path, "register_tls", "1")
            expect(f"register {name}: want failed, got {r}", len(r) == 1 and r[0]["metric"] == "failed")

        results = f("results.jsonl", "\n".join(json.dumps(x) for x in [
            rec("mtls_mesh", "cairn", "req_per_s", 90.0, "req/s") | {"round": 1},
            rec("mtls_mesh", "cairn", "req_per_s", 80.0, "req/s") | {"round": 2},
            rec("mtls_mesh", "cairn", "req_per_s", 100.0, "req/s") | {"round": 3},
            rec("plaintext_mesh", "cairn", "req_per_s", 100.0, "req/s") | {"round": 1},
            rec("mtls_mesh", "cairn", "errors", 2, "count") | {"round": 1},
            rec("mtls_mesh", "cairn", "errors", 3, "count") | {"round": 2},
        ]) + "\n")
        get, _, _, _, _ = summarize(load(results))
        expect(f"median of 90/80/100 is 90: {get}", get[("mtls_mesh", "cairn", "req_per_s")] == 90.0)
        expect(f"errors are summed: {get}", get[("mtls_mesh", "cairn", "errors")] == 5)
        out = os.path.join(d, "report.json")
        with contextlib.redirect_stdout(io.StringIO()) as printed:
            cmd_report(results, out)
        cost = [x for x in json.load(open(out)) if x["metric"] == "req_per_s_cost_vs_plaintext_mesh"]
        expect(f"mesh cost 10%: {cost}", len(cost) == 1 and abs(cost[0]["value"] - 0.1) < 1e-9)
        expect("report names the goal", "goal: <= 15%" in printed.getvalue())

    for p in problems:
        print("selftest: " + p, file=sys.stderr)
    print(f"selftest: {'FAILED' if problems else 'passed'}", file=sys.stderr)
    sys.exit(1 if problems else 0)


# ---------------------------------------------------------------- report

def median(vals):
    vals = sorted(vals)
    n = len(vals)
    return vals[n // 2] if n % 2 else (vals[n // 2 - 1] + vals[n // 2]) / 2


def load(results):
    records = []
    with open(results) as f:
        for line in f:
            if line.strip():
                records.append(json.loads(line))
    return records


def summarize(records):
    """Medians over rounds (errors: sums) beside the per-round records."""
    per_round, fixed, failures, notes = {}, {}, {}, {}
    for r in records:
        key = (r["workload"], r["system"], r["metric"])
        if r["metric"] == "failed":
            failures[(r["workload"], r["system"])] = r.get("note", "")
        elif "round" in r:
            per_round.setdefault(key, []).append(r)
        else:
            fixed[key] = r["value"]
            if r.get("note"):
                notes[key] = r["note"]
    medians = []
    get = dict(fixed)
    for key, rs in per_round.items():
        vals = [r["value"] for r in rs]
        summed = key[2].endswith("errors")
        v = sum(vals) if summed else median(vals)
        get[key] = v
        medians.append(rec(*key, v, rs[0]["unit"], f"{'sum' if summed else 'median'} "
                                                   f"of {len(vals)} rounds"))
    return get, per_round, failures, notes, medians


def rounds_text(per_round, workload, system, metric, scale=1000.0, suffix="k"):
    rs = sorted(per_round.get((workload, system, metric), []), key=lambda r: r["round"])
    return " / ".join(f"{r['value'] / scale:.1f}{suffix}" for r in rs) or "-"


def cmd_report(results, json_out=None):
    records = load(results)
    get, per_round, failures, notes, medians = summarize(records)
    ratios = []

    def val(w, s, m):
        return None if (w, s) in failures else get.get((w, s, m))

    def row(w, s, metrics):
        if (w, s) in failures:
            return [s, "FAILED"] + ["-"] * (len(metrics))
        cells = [s]
        for m, kind in metrics:
            cells.append(bench.fmt(val(w, s, m), kind))
        cells.append(rounds_text(per_round, w, s, metrics[0][0]))
        return cells

    load_metrics = [("req_per_s", "rps"), ("latency_p50_ms", "ms"), ("latency_p99_ms", "ms"),
                    ("errors", "bytes")]
    for w, title in (("https", "h2load -t2 -c10 -m10 over TLS (ALPN h2), 1 KB responses"),
                     ("https_h1", "h2load --h1 -t2 -c50 over TLS (ALPN http/1.1), keep-alive")):
        print(f"\n== {w}: {title}")
        bench.table(["system", "req/s", "p50 ms", "p99 ms", "errors", "each round"],
                    [row(w, s, load_metrics) for s in SYSTEMS if (w, s) in failures
                     or (w, s, "req_per_s") in get])
        best = [(val(w, s, "req_per_s"), val(w, s, "latency_p99_ms"), s) for s in ("nginx", "haproxy")]
        best = [b for b in best if b[0] and b[1]]
        c_rps, c_p99 = val(w, "cairn", "req_per_s"), val(w, "cairn", "latency_p99_ms")
        if best and c_rps and c_p99:
            b_rps, _, b_sys = max(best)
            b_p99 = min(b[1] for b in best)
            print(f"cairn: {c_rps / b_rps:.2f}x the req/s of the better ({b_sys}); p99 {c_p99:.3f} ms "
                  f"vs best {b_p99:.3f} ms ({c_p99 / b_p99:.2f}x)   goal: >= 1.0x, p99 no worse")
            ratios.append(rec(w, "cairn", "req_per_s_vs_best_proxy", round(c_rps / b_rps, 3), "ratio"))
            ratios.append(rec(w, "cairn", "latency_p99_vs_best_proxy", round(c_p99 / b_p99, 3), "ratio"))

    w = "https"
    print(f"\n== {w} handshakes: full TLS handshakes (h2load --h1 bursts, one connection per client, "
          "no resumption), 2 workers each")
    bench.table(["system", "handshakes/s", "per worker", "errors", "each round"],
                [([s, "FAILED", "-", "-", "-"] if (w, s) in failures or (w, s, "handshakes_failed") in get
                  else [s, bench.fmt(val(w, s, "handshakes_per_s"), "rps"),
                        bench.fmt(val(w, s, "handshakes_per_s_per_worker"), "rps"),
                        bench.fmt(val(w, s, "handshake_errors"), "bytes"),
                        rounds_text(per_round, w, s, "handshakes_per_s", 1.0, "")])
                 for s in SYSTEMS if (w, s) in failures or (w, s, "handshakes_per_s") in get
                 or (w, s, "handshakes_failed") in get])
    c_hs, n_hs = val(w, "cairn", "handshakes_per_s"), val(w, "nginx", "handshakes_per_s")
    if c_hs and n_hs:
        print(f"cairn: {c_hs / n_hs:.2f}x nginx's handshakes/s")
        ratios.append(rec(w, "cairn", "handshakes_per_s_vs_nginx", round(c_hs / n_hs, 3), "ratio"))

    def pair(title, secure, plain, goal, label):
        print(f"\n== {title}")
        rows = []
        for wl in (plain, secure):
            if (wl, "cairn") in failures:
                rows.append([wl, "FAILED", "-", "-", "-", failures[(wl, "cairn")][:60]])
            elif (wl, "cairn", "req_per_s") in get:
                rows.append([wl, bench.fmt(get[(wl, "cairn", "req_per_s")], "rps"),
                             bench.fmt(get.get((wl, "cairn", "latency_p50_ms")), "ms"),
                             bench.fmt(get.get((wl, "cairn", "latency_p99_ms")), "ms"),
                             bench.fmt(get.get((wl, "cairn", "errors")), "bytes"),
                             rounds_text(per_round, wl, "cairn", "req_per_s")])
        bench.table(["workload", label, "p50 ms", "p99 ms", "errors", "each round"], rows)
        s, p = val(secure, "cairn", "req_per_s"), val(plain, "cairn", "req_per_s")
        if s and p:
            cost = 1 - s / p
            print(f"cairn: {secure} costs {cost * 100:.1f}% of the {plain} rate   goal: <= {goal}%")
            ratios.append(rec(secure, "cairn", f"req_per_s_cost_vs_{plain}", round(cost, 4), "fraction"))

    pair("mesh: client -h2c-> sidecar A -> sidecar B -> backend (h2load -t2 -c10 -m10)",
         "mtls_mesh", "plaintext_mesh", 15, "req/s")
    pair("registry: registrations/s (cairn_registry_bench register, connections open before timing)",
         "register_tls", "register_plain", 10, "regs/s")

    pins = [(k, v) for k, v in sorted(notes.items()) if k[2] == "tls_pinned"]
    if pins:
        print("\nnegotiated (h2load's first connection; tls_pinned 0 = NOT the pinned parameters):")
        for (w, s, _), note in pins:
            print(f"  {w:16} {s:8} {'ok' if get[(w, s, 'tls_pinned')] else 'MISMATCH'}  {note}")
    other = [(k, v) for k, v in sorted(notes.items()) if k[2] != "tls_pinned"]
    for (w, s, m), note in other:
        print(f"  {w} {s} {m}: {note}")
    if failures:
        print("\nfailed:")
        for (w, s), note in sorted(failures.items()):
            print(f"  {s}/{w}: {note}")
    if json_out:
        out = medians + [r for r in records if "round" not in r] + [
            r for r in records if "round" in r] + ratios
        with open(json_out, "w") as f:
            json.dump(out, f, indent=1)
            f.write("\n")
        print(f"\nwrote {len(out)} records to {json_out}")


def main(argv):
    if len(argv) < 2:
        sys.exit(__doc__)
    cmd, args = argv[1], argv[2:]
    if cmd == "report":
        json_out = None
        if "--json" in args:
            i = args.index("--json")
            json_out = args[i + 1]
            args = args[:i] + args[i + 2:]
        return cmd_report(args[0], json_out)
    if cmd == "selftest":
        return cmd_selftest()
    fn = {"ports": bench.cmd_ports, "parse-h2load": cmd_parse_h2load, "tls-check": cmd_tls_check,
          "parse-handshakes": cmd_parse_handshakes, "parse-register": cmd_parse_register,
          "record": bench.cmd_record}.get(cmd)
    if fn is None:
        sys.exit(__doc__)
    fn(*args)


if __name__ == "__main__":
    main(sys.argv)
