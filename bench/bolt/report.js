'use strict';

// bench/bolt/run's report: reads WORK/<workload>-<system>.json (load.js
// output), prints a table and the ratios against the goals, and writes the
// records { workload, system, metric, value, unit } (a JSON array) to FILE.
//
//   node bench/bolt/report.js WORK CALLS [FILE]

const fs = require('fs');
const path = require('path');

const [ work, callsArg, jsonOut ] = process.argv.slice(2);
const calls = Number(callsArg);
const WORKLOADS = [ 'saturation', 'half_load', 'errors' ];
const SYSTEMS = [ 'direct', 'mesh' ];

const results = {};
for (const workload of WORKLOADS) {
  for (const system of SYSTEMS) {
    const file = path.join(work, `${workload}-${system}.json`);
    try {
      results[`${workload}/${system}`] = JSON.parse(fs.readFileSync(file, 'utf8'));
    } catch (err) {
      results[`${workload}/${system}`] = null;
    }
  }
}

// CPU µs per finished call of each watched process (the load processes
// summed as `load`), over the measured window.
function cpuPerCall(r) {
  const calls = r.completed + r.errors;
  const out = {};
  if (!calls || !r.cpu_window_s) return out;
  const perCall = pct => Math.round(10 * pct / 100 * r.cpu_window_s * 1e6 / calls) / 10;
  let load = 0;
  for (const [ name, pct ] of Object.entries(r.cpu_pct || {})) {
    if (name.startsWith('load')) load += pct;
    else if (name !== 'registry') out[name] = perCall(pct);
  }
  out.load = perCall(load);
  return out;
}

const records = [];
const add = (workload, system, metric, value, unit, note) => {
  if (value === null || value === undefined || Number.isNaN(value)) return;
  const record = { workload, system, metric, value, unit };
  if (note) record.note = note;
  records.push(record);
};
let missing = 0;
for (const workload of WORKLOADS) {
  for (const system of SYSTEMS) {
    const r = results[`${workload}/${system}`];
    if (!r) {
      missing++;
      add(workload, system, 'failed', 1, 'bool', 'not measured');
      continue;
    }
    add(workload, system, 'req_per_s', r.req_per_s, 'req/s');
    add(workload, system, 'latency_p50_ms', r.latency_p50_ms, 'ms');
    add(workload, system, 'latency_p99_ms', r.latency_p99_ms, 'ms');
    add(workload, system, 'latency_p999_ms', r.latency_p999_ms, 'ms');
    add(workload, system, 'errors', r.errors, 'count');
    add(workload, system, 'calls', r.completed + r.errors, 'count');
    if (workload === 'half_load') add(workload, system, 'target_req_per_s', r.rate, 'req/s');
    for (const [ name, pct ] of Object.entries(r.cpu_pct || {})) {
      if (system === 'direct' && [ 'outbound', 'inbound' ].includes(name)) continue; // idle then
      add(workload, system, `cpu_pct_${name}`, pct, '%');
    }
    // CPU time per call: robust to other load on the machine, unlike req/s.
    for (const [ name, us ] of Object.entries(cpuPerCall(r))) {
      if (system === 'direct' && [ 'outbound', 'inbound' ].includes(name)) continue;
      add(workload, system, `cpu_us_per_call_${name}`, us, 'us');
    }
  }
}

const get = (workload, system, field) => (results[`${workload}/${system}`] || {})[field];
const sat = { direct: get('saturation', 'direct', 'req_per_s'), mesh: get('saturation', 'mesh', 'req_per_s') };
const throughputRatio = sat.direct && sat.mesh ? sat.mesh / sat.direct : null;
const p99 = { direct: get('half_load', 'direct', 'latency_p99_ms'), mesh: get('half_load', 'mesh', 'latency_p99_ms') };
const addedP99Us = p99.direct !== undefined && p99.mesh !== undefined && p99.direct !== null && p99.mesh !== null
  ? Math.round((p99.mesh - p99.direct) * 1000) : null;
add('half_load', 'mesh', 'added_p99_us', addedP99Us, 'us');
add('saturation', 'mesh', 'throughput_ratio_vs_direct', throughputRatio === null ? null : Math.round(throughputRatio * 1000) / 1000, 'ratio');

// ------------------------------------------------------------ table
const fmt = (v, d = 1) => (v === null || v === undefined ? '-' : typeof v === 'number' ? v.toFixed(d) : String(v));
const rows = [ [ 'workload', 'system', 'req/s', 'p50 ms', 'p99 ms', 'p99.9 ms', 'errors', 'calls', 'CPU % (load / provider / outbound / inbound)', 'CPU µs/call (same)' ] ];
for (const workload of WORKLOADS) {
  for (const system of SYSTEMS) {
    const r = results[`${workload}/${system}`];
    if (!r) {
      rows.push([ workload, system, 'FAILED', '', '', '', '', '', '', '' ]);
      continue;
    }
    const cpu = r.cpu_pct || {};
    const loadCpu = Object.entries(cpu).filter(([ k ]) => k.startsWith('load')).reduce((s, [ , v ]) => s + v, 0);
    const cpuText = [ loadCpu, cpu.provider, system === 'mesh' ? cpu.outbound : null, system === 'mesh' ? cpu.inbound : null ]
      .map(v => fmt(v, 0)).join(' / ');
    const us = cpuPerCall(r);
    const usText = [ us.load, us.provider, system === 'mesh' ? us.outbound : null, system === 'mesh' ? us.inbound : null ]
      .map(v => fmt(v, 1)).join(' / ');
    rows.push([ workload, system, fmt(r.req_per_s, 0), fmt(r.latency_p50_ms, 3), fmt(r.latency_p99_ms, 3),
      fmt(r.latency_p999_ms, 3), String(r.errors), String(r.completed + r.errors), cpuText, usText ]);
  }
}
const widths = rows[0].map((_, i) => Math.max(...rows.map(row => row[i].length)));
for (const row of rows) console.log(row.map((cell, i) => cell.padEnd(widths[i])).join('  ').trimEnd());
console.log('');
const halfRate = get('half_load', 'direct', 'rate');
console.log(`goal: mesh throughput >= 0.8 x direct: ${throughputRatio === null ? '-' : throughputRatio.toFixed(2)} x` +
  ` (${fmt(sat.mesh, 0)} / ${fmt(sat.direct, 0)} req/s) -> ${throughputRatio === null ? 'n/a' : throughputRatio >= 0.8 ? 'met' : 'MISSED'}`);
console.log(`goal: added p99 <= 200 us at half load (${fmt(halfRate, 0)} req/s): ${addedP99Us === null ? '-' : addedP99Us} us` +
  ` -> ${addedP99Us === null ? 'n/a' : addedP99Us <= 200 ? 'met' : 'MISSED'}`);
const meshErrors = get('errors', 'mesh', 'errors');
const meshCalls = results['errors/mesh'] ? results['errors/mesh'].completed + results['errors/mesh'].errors : null;
console.log(`goal: zero errors over ${calls} calls through the mesh: ${meshErrors === undefined ? '-' : meshErrors} errors in ${meshCalls === null ? '-' : meshCalls} calls` +
  ` -> ${meshErrors === undefined ? 'n/a' : meshErrors === 0 && meshCalls >= calls ? 'met' : 'MISSED'}` +
  (calls < 1000000 ? ' (quick run: the goal is over 1,000,000)' : ''));
for (const key of Object.keys(results)) {
  const r = results[key];
  if (r && r.first_errors && r.first_errors.length) console.log(`${key} first errors: ${r.first_errors.join(' | ')}`);
}

if (jsonOut) {
  fs.writeFileSync(jsonOut, JSON.stringify(records, null, 1) + '\n');
  console.log(`\nwrote ${records.length} records to ${jsonOut}`);
}
process.exit(missing ? 1 : 0);
