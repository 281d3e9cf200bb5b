#!/usr/bin/env python3
"""Helpers for bench/sidecar/run (standard library only).

  bench.py ports N                        N free TCP ports on 127.0.0.1
  bench.py rss PID                        VmRSS in bytes of PID plus all its descendants
  bench.py pss PID [--anon]               Pss in bytes (smaps_rollup) of PID plus all its
                                          descendants; --anon: also their Pss_Anon
  bench.py accept-queue PORT              connections waiting in PORT's listen queue(s)
  bench.py hold PORT COUNT READY RESULT MAX_S
                                          open COUNT idle connections and hold them
  bench.py parse-wrk OUT WORKLOAD SYSTEM  JSON-lines records from a wrk run
  bench.py parse-h2load OUT LOG WORKLOAD SYSTEM DURATION_S
                                          JSON-lines records from an h2load run
  bench.py record WORKLOAD SYSTEM METRIC VALUE UNIT [NOTE]
  bench.py meta KEY=VALUE...              the run's metadata record (settings.KEY: a setting)
  bench.py report RESULTS.jsonl [--json FILE]
                                          tables + Cairn ratios; optional JSON array

Records are {"workload", "system", "metric", "value", "unit"} (+ "note" when
there is one). A system that could not be measured gets metric "failed".
A record measured in a load round has "round"; the report adds, for each
figure measured in rounds, a record with the median (errors: the sum) and
"rounds" and "spread_pct" ((max - min) / median * 100). The record of
workload "run", metric "meta" holds the machine, commit, date, load averages
and settings in "meta".
"""

import json
import math
import os
import re
import resource
import select
import signal
import socket
import struct
import sys
import time

SYSTEMS = ["direct", "nginx", "haproxy", "cairn", "cairn-hold-on"]
PROXIES = ["nginx", "haproxy"]
CAIRNS = ["cairn", "cairn-hold-on"]
MIXED = ["mixed_h2_load", "mixed_h1_lone", "mixed_h2_lone"]


def rec(workload, system, metric, value, unit, note=None):
    r = {"workload": workload, "system": system, "metric": metric, "value": value, "unit": unit}
    if note:
        r["note"] = note
    return r


def emit(records):
    for r in records:
        print(json.dumps(r))


# ---------------------------------------------------------------- processes

def children_map():
    kids = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        # comm may hold spaces and parentheses: the fields after the last ')'.
        fields = stat[stat.rfind(")") + 2:].split()
        kids.setdefault(int(fields[1]), []).append(int(name))
    return kids


def descendants(pid):
    kids = children_map()
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, []))
    return out


def vmrss(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def cmd_rss(pid):
    print(sum(vmrss(p) for p in descendants(int(pid))))


def smaps_rollup(pid):
    """{field: bytes} of /proc/PID/smaps_rollup ({} when the process is gone)."""
    out = {}
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                parts = line.split()
                if len(parts) == 3 and parts[2] == "kB":
                    out[parts[0].rstrip(":")] = int(parts[1]) * 1024
    except OSError:
        pass
    return out


def cmd_pss(pid, *flags):
    """PSS of PID and its descendants: a page shared by n processes counts 1/n
    in each, so the master and workers of nginx add up to what they hold."""
    rollups = [smaps_rollup(p) for p in descendants(int(pid))]
    pss = sum(r.get("Pss", 0) for r in rollups)
    if "--anon" in flags:
        print(pss, sum(r.get("Pss_Anon", 0) for r in rollups))
    else:
        print(pss)


def cmd_ports(n):
    socks = []
    for _ in range(int(n)):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
    print(" ".join(str(s.getsockname()[1]) for s in socks))
    for s in socks:
        s.close()


def cmd_accept_queue(port):
    """Sum of rx_queue over listening sockets on PORT (= not yet accepted)."""
    port = int(port)
    total = 0
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            cols = line.split()
            local, state, queues = cols[1], cols[3], cols[4]
            if state == "0A" and int(local.split(":")[1], 16) == port:
                total += int(queues.split(":")[1], 16)
    print(total)


# ---------------------------------------------------------------- idle connections

def cmd_hold(port, count, ready_file, result_file, max_s):
    """Opens COUNT TCP connections to 127.0.0.1:PORT, sends nothing, holds them.

    Writes "opened N failed M" to READY once done connecting; on SIGTERM (or
    after MAX_S seconds) writes "alive N" (connections the server has not
    closed) to RESULT, then resets every connection (no TIME_WAIT left).
    """
    port, count, max_s = int(port), int(count), float(max_s)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    start = time.monotonic()
    socks, failed, consecutive = [], 0, 0
    linger = struct.pack("ii", 1, 0)
    for _ in range(count):
        if stop or time.monotonic() - start > min(60.0, max_s) or consecutive >= 20:
            break
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
        s.settimeout(3.0)
        try:
            s.connect(("127.0.0.1", port))
            socks.append(s)
            consecutive = 0
        except OSError:
            s.close()
            failed += 1
            consecutive += 1
    with open(ready_file + ".tmp", "w") as f:
        f.write(f"opened {len(socks)} failed {failed}\n")
    os.rename(ready_file + ".tmp", ready_file)
    while not stop and time.monotonic() - start < max_s:
        time.sleep(0.05)
    poller = select.poll()
    for s in socks:
        poller.register(s.fileno(), select.POLLIN | select.POLLHUP | select.POLLERR)
    closed = set()
    for fd, _ in poller.poll(0):
        closed.add(fd)  # servers send nothing to an idle client: readable = EOF/RST
    alive = len(socks) - len(closed)
    with open(result_file + ".tmp", "w") as f:
        f.write(f"alive {alive}\n")
    os.rename(result_file + ".tmp", result_file)
    for s in socks:
        s.close()


# ---------------------------------------------------------------- parsers

def percentile(sorted_vals, p):
    """Nearest-rank percentile of an ascending list."""
    if not sorted_vals:
        return None
    k = max(1, math.ceil(p / 100.0 * len(sorted_vals)))
    return sorted_vals[min(k, len(sorted_vals)) - 1]


def with_round(records, round_no):
    """Tags each record with its load round (the report takes medians over rounds)."""
    if round_no is not None:
        for r in records:
            r["round"] = int(round_no)
    return records


def cmd_parse_wrk(out, workload, system, round_no=None):
    text = open(out, errors="replace").read()
    m = re.search(r"^WRK_REPORT (.*)$", text, re.M)
    if not m:
        emit([rec(workload, system, "failed", 1, "bool", "wrk printed no report: " + tail(text))])
        return
    kv = {k: float(v) for k, v in (x.split("=") for x in m.group(1).split())}
    errors = kv["err_connect"] + kv["err_read"] + kv["err_write"] + kv["err_status"] + kv["err_timeout"]
    if kv["requests"] == 0:
        emit([rec(workload, system, "failed", 1, "bool", "no request completed: " + tail(text))])
        return
    good = kv["requests"] - kv["err_status"]
    rps = good / (kv["duration_us"] / 1e6)
    emit(with_round([
        rec(workload, system, "req_per_s", round(rps, 1), "req/s"),
        rec(workload, system, "latency_p50_ms", kv["p50_us"] / 1000, "ms"),
        rec(workload, system, "latency_p99_ms", kv["p99_us"] / 1000, "ms"),
        rec(workload, system, "latency_p999_ms", kv["p999_us"] / 1000, "ms"),
        rec(workload, system, "errors", int(errors), "count"),
    ], round_no))


def cmd_parse_h2load(out, log, workload, system, duration_s, round_no=None):
    text = open(out, errors="replace").read()
    m = re.search(r"finished in ([\d.]+)(m?s), ([\d.]+) req/s", text)
    r = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, "
                  r"(\d+) errored, (\d+) timeout", text)
    if not (m and r):
        emit([rec(workload, system, "failed", 1, "bool", "h2load printed no summary: " + tail(text))])
        return
    failed, errored, timeout = (int(r.group(i)) for i in (5, 6, 7))
    s = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", text)
    ok2xx = int(s.group(1)) if s else 0
    non2xx = sum(int(s.group(i)) for i in (2, 3, 4)) if s else 0
    lat = []
    try:
        with open(log) as f:
            for line in f:
                cols = line.split("\t")
                if len(cols) >= 3 and cols[1].startswith("2"):
                    lat.append(int(cols[2]))
    except OSError:
        pass
    if ok2xx == 0 or not lat:
        emit([rec(workload, system, "failed", 1, "bool", "no 2xx response: " + tail(text))])
        return
    lat.sort()
    # "finished in" counts the warm-up too; the log holds main-duration requests only.
    rps = len(lat) / float(duration_s)
    emit(with_round([
        rec(workload, system, "req_per_s", round(rps, 1), "req/s"),
        rec(workload, system, "latency_p50_ms", percentile(lat, 50) / 1000, "ms"),
        rec(workload, system, "latency_p99_ms", percentile(lat, 99) / 1000, "ms"),
        rec(workload, system, "latency_p999_ms", percentile(lat, 99.9) / 1000, "ms"),
        rec(workload, system, "errors", failed + errored + timeout + non2xx, "count"),
    ], round_no))


def tail(text, n=300):
    return " ".join(text.strip().split())[-n:]


def cmd_record(workload, system, metric, value, unit, note=None):
    v = float(value)
    emit([rec(workload, system, metric, int(v) if v.is_integer() else v, unit, note)])


def cmd_meta(*pairs):
    """One record holding KEY=VALUE pairs (settings.KEY go under "settings").
    Values are strings (a commit hash may read as a number), but settings that
    read as numbers are numbers, and true/false are booleans."""
    meta = {"settings": {}}
    for pair in pairs:
        key, _, value = pair.partition("=")
        if value in ("true", "false"):
            value = value == "true"
        elif key.startswith("settings.") and re.fullmatch(r"-?\d+(\.\d+)?", value):
            value = float(value) if "." in value else int(value)
        if key.startswith("settings."):
            meta["settings"][key[len("settings."):]] = value
        else:
            meta[key] = value
    r = rec("run", "sidecar", "meta", 1, "info")
    r["meta"] = meta
    emit([r])


# ---------------------------------------------------------------- report

def fmt(v, kind):
    if v is None:
        return "-"
    if kind == "rps":
        return f"{v:,.0f}"
    if kind == "ms":
        return f"{v:.3f}"
    if kind == "mib":
        return f"{v / 1048576:.1f}"
    if kind == "bytes":
        return f"{v:,.0f}"
    return str(v)


def table(headers, rows):
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *rows)]
    line = lambda cells: "  ".join(str(c).rjust(w) if i else str(c).ljust(w)
                                   for i, (c, w) in enumerate(zip(cells, widths)))
    print(line(headers))
    print("  ".join("-" * w for w in widths))
    for r in rows:
        print(line(r))


def per_round_line(per_round, workload, systems=SYSTEMS):
    """req/s of every system in every round, for a glance at the spread."""
    parts = []
    for s in systems:
        rs = per_round.get((workload, s, "req_per_s"), [])
        if rs:
            parts.append(s + " " + "/".join(f"{r['value'] / 1000:.1f}k" for r in
                                            sorted(rs, key=lambda r: r["round"])))
    return ", ".join(parts)


def median(vals):
    vals = sorted(vals)
    n = len(vals)
    return vals[n // 2] if n % 2 else (vals[n // 2 - 1] + vals[n // 2]) / 2


def spread_pct(vals):
    """(max - min) / median * 100, one decimal; None when the median is 0."""
    m = median(vals)
    return round((max(vals) - min(vals)) / m * 100, 1) if m else None


def best_of(values, pick):
    values = [v for v in values if v is not None]
    return pick(values) if values else None


def cmd_report(results, json_out=None):
    records = []
    with open(results) as f:
        for line in f:
            line = line.strip()
            if line:
                records.append(json.loads(line))
    get = {}
    failures = {}
    per_round = {}
    meta = None
    for r in records:
        if r["metric"] == "failed":
            failures[(r["workload"], r["system"])] = r.get("note", "")
        elif r["metric"] == "meta":
            meta = r.get("meta")
        elif "round" in r:
            per_round.setdefault((r["workload"], r["system"], r["metric"]), []).append(r)
        else:
            get[(r["workload"], r["system"], r["metric"])] = r["value"]
    # A figure measured in several rounds is their median (errors: their sum),
    # with its spread over the rounds; the per-round records stay in the JSON
    # beside the medians.
    medians = []
    spread = {}
    for (w, s, m), rs in per_round.items():
        vals = [r["value"] for r in rs]
        if m == "errors":
            v = sum(vals)
            r = rec(w, s, m, v, rs[0]["unit"], f"sum over {len(vals)} rounds")
        else:
            v = median(vals)
            r = rec(w, s, m, v, rs[0]["unit"], f"median of {len(vals)} rounds")
            r["spread_pct"] = spread[(w, s, m)] = spread_pct(vals)
        r["rounds"] = len(vals)
        get[(w, s, m)] = v
        medians.append(r)
    records = medians + [r for r in records if "round" not in r] + [
        r for r in records if "round" in r]
    rounds = max((len(rs) for rs in per_round.values()), default=1)

    def val(w, s, m):
        return None if (w, s) in failures else get.get((w, s, m))

    def spr(w, s, m):
        v = spread.get((w, s, m))
        return "-" if v is None or rounds < 2 else f"{v:.1f}"

    if meta:
        st = meta.get("settings", {})
        print(f"\nrun: commit {meta.get('commit')}{' (tree with uncommitted changes)' if meta.get('tree_dirty') else ''}, "
              f"{meta.get('date')}, load average {meta.get('loadavg_start')} -> {meta.get('loadavg_end')}; "
              f"{st.get('rounds')} round(s), {st.get('duration_s')} s per load, "
              f"{st.get('idle_conns')} idle connections for every proxy; cairn build: {meta.get('cairn_build')}")

    ratios = []

    def ratio_line(w, c, rps_metric="req_per_s"):
        """c's throughput and p99 against the better of nginx and HAProxy."""
        if (w, c) in failures or (w, c, rps_metric) not in get:
            print(f"{c}: n/a (" + (failures.get((w, c)) or "not measured") + ")")
            return
        best_rps = best_of((val(w, s, rps_metric) for s in PROXIES), max)
        best_p99 = best_of((val(w, s, "latency_p99_ms") for s in PROXIES), min)
        c_rps, c_p99 = val(w, c, rps_metric), val(w, c, "latency_p99_ms")
        if c_rps and best_rps and c_p99 and best_p99:
            print(f"{c}: throughput {c_rps / best_rps:.2f}x best of nginx/haproxy; "
                  f"p99 {c_p99:.3f} ms vs best {best_p99:.3f} ms ({c_p99 / best_p99:.2f}x)")
            ratios.append(rec(w, c, "req_per_s_vs_best_proxy", round(c_rps / best_rps, 3), "ratio"))
            ratios.append(rec(w, c, "latency_p99_vs_best_proxy", round(c_p99 / best_p99, 3), "ratio"))
        else:
            print(f"{c}: n/a (no nginx/haproxy figure)")

    for w in ("http1", "http2"):
        print(f"\n== {w}: " + ("wrk -t2 -c50, HTTP/1.1 keep-alive" if w == "http1"
                              else "h2load -c10 -m10 (100 streams), h2c prior knowledge"))
        rows = []
        for s in SYSTEMS:
            if (w, s) in failures:
                rows.append([s, "FAILED", "-", "-", "-", "-", "-", "-"])
                continue
            if (w, s, "req_per_s") not in get:
                continue
            rows.append([s, fmt(val(w, s, "req_per_s"), "rps"), spr(w, s, "req_per_s"),
                         fmt(val(w, s, "latency_p50_ms"), "ms"),
                         fmt(val(w, s, "latency_p99_ms"), "ms"), fmt(val(w, s, "latency_p999_ms"), "ms"),
                         fmt(val(w, s, "errors"), "bytes"), fmt(val(w, s, "pss_bytes"), "mib")])
        if rounds > 1:
            print(f"(median of {rounds} rounds; each round: {per_round_line(per_round, w)})")
        table(["system", "req/s", "spread %", "p50 ms", "p99 ms", "p99.9 ms", "errors", "PSS MiB after"], rows)
        for c in CAIRNS:
            ratio_line(w, c)
        on, off = val(w, "cairn-hold-on", "req_per_s"), val(w, "cairn", "req_per_s")
        if on and off:
            print(f"hold on / hold off: {on / off:.2f}x req/s")
            ratios.append(rec(w, "cairn-hold-on", "req_per_s_vs_hold_off", round(on / off, 3),
                              "ratio"))

    if any(k[0] in MIXED for k in list(get) + list(failures)):
        print("\n== mixed: 1-worker proxies; h2load -c10 -m10 and, meanwhile, a lone HTTP/1.1 client "
              "(wrk -t1 -c1) and a lone h2 client (h2load -c1 -m1)")
        if rounds > 1:
            print(f"(median of {rounds} rounds; h2 load each round: "
                  f"{per_round_line(per_round, 'mixed_h2_load')})")
        rows = []
        for s in ["nginx", "haproxy"] + CAIRNS:
            if all((w, s) in failures for w in MIXED):
                rows.append([s, "FAILED"] + ["-"] * 8)
                continue
            if not any((w, s, "req_per_s") in get for w in MIXED):
                continue
            rows.append([s, fmt(val("mixed_h2_load", s, "req_per_s"), "rps"),
                         spr("mixed_h2_load", s, "req_per_s"),
                         fmt(val("mixed_h2_load", s, "latency_p99_ms"), "ms"),
                         fmt(val("mixed_h1_lone", s, "latency_p50_ms"), "ms"),
                         fmt(val("mixed_h1_lone", s, "latency_p99_ms"), "ms"),
                         spr("mixed_h1_lone", s, "latency_p99_ms"),
                         fmt(val("mixed_h2_lone", s, "latency_p50_ms"), "ms"),
                         fmt(val("mixed_h2_lone", s, "latency_p99_ms"), "ms"),
                         spr("mixed_h2_lone", s, "latency_p99_ms")])
        table(["system", "load req/s", "spread %", "load p99", "h1 lone p50", "h1 lone p99", "spread %",
               "h2 lone p50", "h2 lone p99", "spread %"], rows)
        print("(latencies in ms)")
        for c in CAIRNS:
            ratio_line("mixed_h2_load", c)
            for w in ("mixed_h1_lone", "mixed_h2_lone"):
                c50, c99 = val(w, c, "latency_p50_ms"), val(w, c, "latency_p99_ms")
                b50 = best_of((val(w, s, "latency_p50_ms") for s in PROXIES), min)
                b99 = best_of((val(w, s, "latency_p99_ms") for s in PROXIES), min)
                if c50 and c99 and b50 and b99:
                    print(f"  {w}: p50 {c50 / b50:.2f}x, p99 {c99 / b99:.2f}x best of nginx/haproxy")
                    ratios.append(rec(w, c, "latency_p50_vs_best_proxy", round(c50 / b50, 3), "ratio"))
                    ratios.append(rec(w, c, "latency_p99_vs_best_proxy", round(c99 / b99, 3), "ratio"))

    n_idle = (meta or {}).get("settings", {}).get("idle_conns")
    print("\n== idle: memory after start, and per idle client connection (connect, send nothing)"
          + (f"; {n_idle:,} connections asked of every proxy" if n_idle else ""))
    print("(RSS: VmRSS summed over the process tree, shared pages counted in each process; "
          "PSS: shared pages divided among the processes mapping them)")
    rows = []
    for s in SYSTEMS[1:]:
        if ("idle", s) in failures and ("idle", s, "rss_bytes") not in get:
            rows.append([s, "FAILED"] + ["-"] * 7)
            continue
        if ("idle", s, "rss_bytes") not in get:
            continue
        held = get.get(("idle", s, "idle_conns_held"))
        rows.append([s, fmt(get.get(("idle", s, "rss_bytes")), "mib"),
                     fmt(get.get(("idle", s, "pss_bytes")), "mib"),
                     fmt(get.get(("idle", s, "pss_anon_bytes")), "mib"),
                     fmt(held, "bytes") if held is not None else "-",
                     fmt(get.get(("idle", s, "rss_bytes_idle_conns")), "mib"),
                     fmt(get.get(("idle", s, "pss_bytes_idle_conns")), "mib"),
                     fmt(get.get(("idle", s, "rss_bytes_per_idle_conn")), "bytes"),
                     fmt(get.get(("idle", s, "pss_bytes_per_idle_conn")), "bytes")])
    table(["system", "RSS MiB", "PSS MiB", "PSS anon", "conns held", "RSS w/ conns", "PSS w/ conns",
           "RSS B/conn", "PSS B/conn"], rows)
    for c in CAIRNS:
        msg = []
        for m in ("rss_bytes", "pss_bytes", "rss_bytes_per_idle_conn", "pss_bytes_per_idle_conn"):
            cv = get.get(("idle", c, m))
            best = best_of((get.get(("idle", s, m)) for s in PROXIES), min)
            if cv is not None and best:
                msg.append(f"{m} {cv / best:.2f}x")
                ratios.append(rec("idle", c, m + "_vs_best_proxy", round(cv / best, 3), "ratio"))
        if msg:
            print(f"{c}: " + ", ".join(msg) + " of the best of nginx/haproxy")
        else:
            print(f"{c}: n/a (" + (failures.get(("idle", c)) or "not measured") + ")")
    helds = {get.get(("idle", s, "idle_conns_held")) for s in SYSTEMS[1:]} - {None}
    if len(helds) > 1:
        print("note: the proxies held different numbers of idle connections: "
              + ", ".join(f"{s} {get[('idle', s, 'idle_conns_held')]:,}" for s in SYSTEMS[1:]
                          if ("idle", s, "idle_conns_held") in get))

    if failures:
        print("\nfailed:")
        grouped = {}
        for (w, s), note in sorted(failures.items()):
            grouped.setdefault((s, note), []).append(w)
        for (s, note), ws in grouped.items():
            print(f"  {s} ({', '.join(ws)}): {note}")
    if json_out:
        with open(json_out, "w") as f:
            json.dump(records + ratios, f, indent=1)
            f.write("\n")
        print(f"\nwrote {len(records) + len(ratios)} records to {json_out}")


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
    fn = {"ports": cmd_ports, "rss": cmd_rss, "pss": cmd_pss, "accept-queue": cmd_accept_queue,
          "hold": cmd_hold, "parse-wrk": cmd_parse_wrk, "parse-h2load": cmd_parse_h2load,
          "record": cmd_record, "meta": cmd_meta}.get(cmd)
    if fn is None:
        sys.exit(__doc__)
    fn(*args)


if __name__ == "__main__":
    main(sys.argv)
