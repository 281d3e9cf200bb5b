#!/usr/bin/env python3
"""Helpers for bench/sidecar/run (standard library only).

  bench.py ports N                        N free TCP ports on 127.0.0.1
  bench.py rss PID                        VmRSS in bytes of PID plus all its descendants
  bench.py accept-queue PORT              connections waiting in PORT's listen queue(s)
  bench.py hold PORT COUNT READY RESULT MAX_S
                                          open COUNT idle connections and hold them
  bench.py parse-wrk OUT WORKLOAD SYSTEM  JSON-lines records from a wrk run
  bench.py parse-h2load OUT LOG WORKLOAD SYSTEM DURATION_S
                                          JSON-lines records from an h2load run
  bench.py record WORKLOAD SYSTEM METRIC VALUE UNIT [NOTE]
  bench.py report RESULTS.jsonl [--json FILE]
                                          tables + Cairn ratios; optional JSON array

Records are {"workload", "system", "metric", "value", "unit"} (+ "note" when
there is one). A system that could not be measured gets metric "failed".
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

SYSTEMS = ["direct", "nginx", "haproxy", "cairn"]
PROXIES = ["nginx", "haproxy"]


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


def per_round_line(per_round, workload):
    """req/s of every system in every round, for a glance at the spread."""
    parts = []
    for s in SYSTEMS:
        rs = per_round.get((workload, s, "req_per_s"), [])
        if rs:
            parts.append(s + " " + "/".join(f"{r['value'] / 1000:.1f}k" for r in
                                            sorted(rs, key=lambda r: r["round"])))
    return ", ".join(parts)


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
    for r in records:
        if r["metric"] == "failed":
            failures[(r["workload"], r["system"])] = r.get("note", "")
        elif "round" in r:
            per_round.setdefault((r["workload"], r["system"], r["metric"]), []).append(r)
        else:
            get[(r["workload"], r["system"], r["metric"])] = r["value"]
    # A figure measured in several rounds is their median (errors: their sum);
    # the per-round records stay in the JSON beside the medians.
    medians = []
    for (w, s, m), rs in per_round.items():
        vals = sorted(r["value"] for r in rs)
        v = sum(vals) if m == "errors" else vals[len(vals) // 2] if len(vals) % 2 else (
            (vals[len(vals) // 2 - 1] + vals[len(vals) // 2]) / 2)
        get[(w, s, m)] = v
        medians.append(rec(w, s, m, v, rs[0]["unit"], f"median of {len(vals)} rounds"
                           if m != "errors" else f"sum over {len(vals)} rounds"))
    records = medians + [r for r in records if "round" not in r] + [
        r for r in records if "round" in r]
    rounds = max((len(rs) for rs in per_round.values()), default=1)

    def val(w, s, m):
        return None if (w, s) in failures else get.get((w, s, m))

    ratios = []
    for w in ("http1", "http2"):
        print(f"\n== {w}: " + ("wrk -t2 -c50, HTTP/1.1 keep-alive" if w == "http1"
                              else "h2load -c10 -m10 (100 streams), h2c prior knowledge"))
        rows = []
        for s in SYSTEMS:
            if (w, s) in failures:
                rows.append([s, "FAILED", "-", "-", "-", "-", "-"])
                continue
            if (w, s, "req_per_s") not in get:
                continue
            rows.append([s, fmt(val(w, s, "req_per_s"), "rps"), fmt(val(w, s, "latency_p50_ms"), "ms"),
                         fmt(val(w, s, "latency_p99_ms"), "ms"), fmt(val(w, s, "latency_p999_ms"), "ms"),
                         fmt(val(w, s, "errors"), "bytes"), fmt(val(w, s, "rss_bytes"), "mib")])
        if rounds > 1:
            print(f"(median of {rounds} rounds; each round: {per_round_line(per_round, w)})")
        table(["system", "req/s", "p50 ms", "p99 ms", "p99.9 ms", "errors", "RSS MiB after"], rows)
        best_rps = max((v for v in (val(w, s, "req_per_s") for s in PROXIES) if v), default=None)
        best_p99 = min((v for v in (val(w, s, "latency_p99_ms") for s in PROXIES) if v), default=None)
        c_rps, c_p99 = val(w, "cairn", "req_per_s"), val(w, "cairn", "latency_p99_ms")
        if c_rps and best_rps and c_p99 and best_p99:
            print(f"cairn: throughput {c_rps / best_rps:.2f}x best of nginx/haproxy; "
                  f"p99 {c_p99:.3f} ms vs best {best_p99:.3f} ms ({c_p99 / best_p99:.2f}x)")
            ratios.append(rec(w, "cairn", "req_per_s_vs_best_proxy", round(c_rps / best_rps, 3), "ratio"))
            ratios.append(rec(w, "cairn", "latency_p99_vs_best_proxy", round(c_p99 / best_p99, 3), "ratio"))
        else:
            print("cairn: n/a (" + (failures.get((w, "cairn")) or "not measured") + ")")

    print("\n== idle: RSS after start, and per idle client connection (connect, send nothing)")
    rows = []
    for s in SYSTEMS[1:]:
        if ("idle", s) in failures and ("idle", s, "rss_bytes") not in get:
            rows.append([s, "FAILED", "-", "-", "-"])
            continue
        if ("idle", s, "rss_bytes") not in get:
            continue
        held = get.get(("idle", s, "idle_conns_held"))
        rows.append([s, fmt(get.get(("idle", s, "rss_bytes")), "mib"),
                     fmt(held, "bytes") if held is not None else "-",
                     fmt(get.get(("idle", s, "rss_bytes_idle_conns")), "mib"),
                     fmt(get.get(("idle", s, "rss_bytes_per_idle_conn")), "bytes")])
    table(["system", "RSS MiB idle", "conns held", "RSS MiB w/ conns", "bytes/conn"], rows)
    c_rss = get.get(("idle", "cairn", "rss_bytes"))
    best_rss = min((v for v in (get.get(("idle", s, "rss_bytes")) for s in PROXIES) if v), default=None)
    c_pc = get.get(("idle", "cairn", "rss_bytes_per_idle_conn"))
    best_pc = min((v for v in (get.get(("idle", s, "rss_bytes_per_idle_conn")) for s in PROXIES)
                   if v is not None), default=None)
    if c_rss and best_rss:
        msg = f"cairn: idle RSS {c_rss / best_rss:.2f}x best of nginx/haproxy"
        ratios.append(rec("idle", "cairn", "rss_bytes_vs_best_proxy", round(c_rss / best_rss, 3), "ratio"))
        if c_pc is not None and best_pc:
            msg += f"; per idle conn {c_pc:,.0f} B vs best {best_pc:,.0f} B ({c_pc / best_pc:.2f}x)"
            ratios.append(rec("idle", "cairn", "rss_bytes_per_idle_conn_vs_best_proxy",
                              round(c_pc / best_pc, 3), "ratio"))
        print(msg)
    else:
        print("cairn: n/a (" + (failures.get(("idle", "cairn")) or "not measured") + ")")

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
    fn = {"ports": cmd_ports, "rss": cmd_rss, "accept-queue": cmd_accept_queue, "hold": cmd_hold,
          "parse-wrk": cmd_parse_wrk, "parse-h2load": cmd_parse_h2load, "record": cmd_record}.get(cmd)
    if fn is None:
        sys.exit(__doc__)
    fn(*args)


if __name__ == "__main__":
    main(sys.argv)
