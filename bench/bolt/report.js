'use strict';

// bench/bolt/run's report: reads WORK/meta.json (the run's settings, written
// by run), WORK/<workload>-r<round>-<system>.json for saturation, half_load
// and dubbo, WORK/errors-<system>.json (load.js output), prints a table of
// medians over rounds, each round's figures and the goals, and writes the
// records (a JSON array) to FILE:
//   { workload, system, metric, value, unit [, note, round, spread_pct, rounds, meta] }
// For saturation, half_load and dubbo: one record per round ("round": r) and
// one median record per metric (no "round"; "rounds": N, "spread_pct" =
// (max - min) / |median| * 100, one decimal, absent when the median is 0);
// dubbo also gets errors_total and calls_total per system (sums over its
// rounds, plain records). errors runs once per system: plain records. One
// meta record describes the run (workload "run", system "bolt", metric
// "meta"). Only the workloads the run selected (meta settings.workloads;
// saturation, half_load and errors when absent) are read and reported.
//
//   node bench/bolt/report.js WORK CALLS [FILE]

const fs = require('fs');
const path = require('path');

const [ work, callsArg, jsonOut ] = process.argv.slice(2);
const calls = Number(callsArg);
const SYSTEMS = [ 'direct', 'mesh' ];
const GOAL_RATIO = 0.9;
const GOAL_ADDED_P99_US = 200;
const GOAL_DUBBO_RATIO = 0.8;

const readJson = file => {
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (err) {
    return null;
  }
};
const meta = readJson(path.join(work, 'meta.json')) || { settings: {} };
const settings = meta.settings || {};
const rounds = settings.rounds || 1;
const halfRate = settings.half_load_rate_req_per_s || null;
const selected = new Set(settings.workloads || [ 'saturation', 'half_load', 'errors' ]);
const ROUND_WORKLOADS = [ 'saturation', 'half_load', 'dubbo' ].filter(w => selected.has(w));
const has = workload => selected.has(workload);

// results[workload][system][round] (round 0: errors, run once)
const results = {};
for (const workload of ROUND_WORKLOADS) {
  results[workload] = {};
  for (const system of SYSTEMS) {
    results[workload][system] = {};
    for (let r = 1; r <= rounds; r++) results[workload][system][r] = readJson(path.join(work, `${workload}-r${r}-${system}.json`));
  }
}
if (has('errors')) {
  results.errors = {};
  for (const system of SYSTEMS) results.errors[system] = { 0: readJson(path.join(work, `errors-${system}.json`)) };
}

// CPU µs per finished call of each watched process (the load processes
// summed as `load`), over the measured window.
function cpuPerCall(r) {
  const n = r.completed + r.errors;
  const out = {};
  if (!n || !r.cpu_window_s) return out;
  const perCall = pct => Math.round(10 * pct / 100 * r.cpu_window_s * 1e6 / n) / 10;
  let load = 0;
  for (const [ name, pct ] of Object.entries(r.cpu_pct || {})) {
    if (name.startsWith('load')) load += pct;
    else if (name !== 'registry') out[name] = perCall(pct);
  }
  out.load = perCall(load);
  return out;
}

// The metrics of one load.js result: [metric, value, unit].
function metricsOf(workload, system, r) {
  const out = [
    [ 'req_per_s', r.req_per_s, 'req/s' ],
    [ 'latency_p50_ms', r.latency_p50_ms, 'ms' ],
    [ 'latency_p99_ms', r.latency_p99_ms, 'ms' ],
    [ 'latency_p999_ms', r.latency_p999_ms, 'ms' ],
    [ 'errors', r.errors, 'count' ],
    [ 'calls', r.completed + r.errors, 'count' ],
  ];
  if (workload === 'half_load') out.push([ 'target_req_per_s', r.rate, 'req/s' ]);
  const sidecarIdle = name => system === 'direct' && [ 'outbound', 'inbound' ].includes(name); // not on the path
  for (const [ name, pct ] of Object.entries(r.cpu_pct || {})) if (!sidecarIdle(name)) out.push([ `cpu_pct_${name}`, pct, '%' ]);
  // CPU time per call: robust to other load on the machine, unlike req/s.
  for (const [ name, us ] of Object.entries(cpuPerCall(r))) if (!sidecarIdle(name)) out.push([ `cpu_us_per_call_${name}`, us, 'us' ]);
  return out;
}

const valid = v => v !== null && v !== undefined && !Number.isNaN(v);
const median = values => {
  const s = [ ...values ].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const spreadPct = values => {
  const m = median(values);
  if (m === 0) return Math.max(...values) === Math.min(...values) ? 0 : null;
  return Math.round((Math.max(...values) - Math.min(...values)) / Math.abs(m) * 1000) / 10;
};
const roundTo = (v, d) => Math.round(v * 10 ** d) / 10 ** d;
const decimalsOf = v => { const t = String(v).split('.')[1]; return t ? Math.min(3, t.length) : 0; };

const metaRecord = { workload: 'run', system: 'bolt', metric: 'meta', value: 1, unit: 'info', meta };
const perRound = [];   // records with "round"
const plain = [];      // errors records
// series[workload/system/metric] = { unit, values: [{ round, value }] }
const series = new Map();
const addRound = (workload, system, metric, value, unit, round, note) => {
  if (!valid(value)) return;
  const record = { workload, system, metric, value, unit, round };
  if (note) record.note = note;
  perRound.push(record);
  const key = `${workload}/${system}/${metric}`;
  if (!series.has(key)) series.set(key, { workload, system, metric, unit, values: [] });
  series.get(key).values.push({ round, value });
};
let missing = 0;
for (const workload of ROUND_WORKLOADS) {
  for (const system of SYSTEMS) {
    for (let round = 1; round <= rounds; round++) {
      const r = results[workload][system][round];
      if (!r) {
        missing++;
        perRound.push({ workload, system, metric: 'failed', value: 1, unit: 'bool', round, note: 'not measured' });
        continue;
      }
      for (const [ metric, value, unit ] of metricsOf(workload, system, r)) addRound(workload, system, metric, value, unit, round);
    }
  }
}
for (const system of has('errors') ? SYSTEMS : []) {
  const r = results.errors[system][0];
  if (!r) {
    missing++;
    plain.push({ workload: 'errors', system, metric: 'failed', value: 1, unit: 'bool', note: 'not measured' });
    continue;
  }
  for (const [ metric, value, unit ] of metricsOf('errors', system, r)) {
    if (valid(value)) plain.push({ workload: 'errors', system, metric, value, unit, note: 'one run per system (not in rounds)' });
  }
}
// dubbo: its errors and calls summed over the rounds measured (the zero-error goal).
const dubboTotals = {};
for (const system of has('dubbo') ? SYSTEMS : []) {
  const measured = Object.values(results.dubbo[system]).filter(Boolean);
  if (!measured.length) continue;
  const errors = measured.reduce((a, r) => a + r.errors, 0);
  const callsMade = measured.reduce((a, r) => a + r.completed + r.errors, 0);
  dubboTotals[system] = { errors, calls: callsMade, rounds: measured.length };
  const note = `sum over ${measured.length} round${measured.length === 1 ? '' : 's'}` + (measured.length < rounds ? ` (of ${rounds} planned)` : '');
  plain.push({ workload: 'dubbo', system, metric: 'errors_total', value: errors, unit: 'count', note });
  plain.push({ workload: 'dubbo', system, metric: 'calls_total', value: callsMade, unit: 'count', note });
}

// Mesh against direct in the same round.
const get = (workload, system, round, field) => (((results[workload] || {})[system] || {})[round] || {})[field];
const addedByRound = {};
const ratioByRound = {};
const dubboRatioByRound = {};
for (let round = 1; round <= rounds; round++) {
  const dd = get('dubbo', 'direct', round, 'req_per_s');
  const dm = get('dubbo', 'mesh', round, 'req_per_s');
  if (valid(dd) && valid(dm) && dd > 0) {
    dubboRatioByRound[round] = Math.round(dm / dd * 1000) / 1000;
    addRound('dubbo', 'mesh', 'throughput_ratio_vs_direct', dubboRatioByRound[round], 'ratio', round);
  }
  const sd = get('saturation', 'direct', round, 'req_per_s');
  const sm = get('saturation', 'mesh', round, 'req_per_s');
  if (valid(sd) && valid(sm) && sd > 0) {
    ratioByRound[round] = Math.round(sm / sd * 1000) / 1000;
    addRound('saturation', 'mesh', 'throughput_ratio_vs_direct', ratioByRound[round], 'ratio', round);
  }
  const pd = get('half_load', 'direct', round, 'latency_p99_ms');
  const pm = get('half_load', 'mesh', round, 'latency_p99_ms');
  if (valid(pd) && valid(pm)) {
    addedByRound[round] = Math.round((pm - pd) * 1000);
    addRound('half_load', 'mesh', 'added_p99_us', addedByRound[round], 'us', round, 'mesh p99 - direct p99, same round');
  }
}

// Medians over rounds.
const medians = new Map();
for (const [ key, s ] of series) {
  const values = s.values.map(v => v.value);
  const d = Math.max(...values.map(decimalsOf));
  const record = { workload: s.workload, system: s.system, metric: s.metric, value: roundTo(median(values), Math.max(d, 1)), unit: s.unit };
  const spread = spreadPct(values);
  if (spread !== null) record.spread_pct = spread;
  record.rounds = values.length;
  record.note = `median of ${values.length} round${values.length === 1 ? '' : 's'}` +
    (values.length < rounds ? ` (of ${rounds} planned)` : '') + (spread === null ? '; spread_pct undefined (median 0)' : '');
  medians.set(key, record);
}
const med = (workload, system, metric) => (medians.get(`${workload}/${system}/${metric}`) || {}).value;
const medRecord = (workload, system, metric) => medians.get(`${workload}/${system}/${metric}`);
const valuesOf = (workload, system, metric) => ((series.get(`${workload}/${system}/${metric}`) || {}).values || []).map(v => v.value);

// ------------------------------------------------------------ goals
const ratios = Object.values(ratioByRound);
const ratioMedian = ratios.length ? median(ratios) : null;
const satDirect = valuesOf('saturation', 'direct', 'req_per_s');
const satDirectSpread = satDirect.length ? spreadPct(satDirect) : null;
const ratioVerdict = ratioMedian === null ? 'n/a' : ratioMedian >= GOAL_RATIO ? 'met' : 'MISSED';

const added = Object.values(addedByRound);
const addedMedian = added.length ? median(added) : null;
const addedSpreadUs = added.length ? Math.max(...added) - Math.min(...added) : null;
const p99Direct = valuesOf('half_load', 'direct', 'latency_p99_ms');
const noiseUs = p99Direct.length >= 2 ? Math.round((Math.max(...p99Direct) - Math.min(...p99Direct)) * 1000) : null;
let addedVerdict;
let addedWhy;
if (addedMedian === null) {
  addedVerdict = 'n/a';
  addedWhy = 'not measured';
} else if (noiseUs !== null && Math.abs(addedMedian) < noiseUs) {
  addedVerdict = 'within noise';
  addedWhy = `|${addedMedian}| us is below the spread of direct's p99 over the rounds (${noiseUs} us): no verdict`;
} else if (addedMedian < 0) {
  addedVerdict = 'below noise';
  addedWhy = 'a negative figure: the mesh cannot take latency away, so this is noise, not a met goal' +
    (noiseUs === null ? ' (one round: the noise is not measured)' : ` (direct p99 spread ${noiseUs} us)`);
} else if (addedMedian <= GOAL_ADDED_P99_US) {
  addedVerdict = 'met';
  addedWhy = noiseUs === null ? 'one round: the noise is not measured' : `above the noise (direct p99 spread ${noiseUs} us)`;
} else {
  addedVerdict = 'MISSED';
  addedWhy = noiseUs === null ? 'one round: the noise is not measured' : `direct p99 spread ${noiseUs} us`;
}
const addedRecord = medRecord('half_load', 'mesh', 'added_p99_us');
if (addedRecord) {
  addedRecord.note += `; spread ${addedSpreadUs} us (max - min); direct p99 spread ${noiseUs === null ? 'n/a' : noiseUs + ' us'};` +
    ` goal <= ${GOAL_ADDED_P99_US} us: ${addedVerdict}`;
}
const ratioRecord = medRecord('saturation', 'mesh', 'throughput_ratio_vs_direct');
if (ratioRecord) ratioRecord.note += `; goal >= ${GOAL_RATIO}: ${ratioVerdict}`;

const dubboRatios = Object.values(dubboRatioByRound);
const dubboRatioMedian = dubboRatios.length ? median(dubboRatios) : null;
const dubboDirect = valuesOf('dubbo', 'direct', 'req_per_s');
const dubboDirectSpread = dubboDirect.length ? spreadPct(dubboDirect) : null;
const dubboRatioVerdict = dubboRatioMedian === null ? 'n/a' : dubboRatioMedian >= GOAL_DUBBO_RATIO ? 'met' : 'MISSED';
const dubboMesh = dubboTotals.mesh;
const dubboErrorsVerdict = !dubboMesh ? 'n/a' : dubboMesh.errors === 0 && dubboMesh.calls > 0 ? 'met' : 'MISSED';
const dubboRatioRecord = medRecord('dubbo', 'mesh', 'throughput_ratio_vs_direct');
if (dubboRatioRecord) dubboRatioRecord.note += `; goal >= ${GOAL_DUBBO_RATIO}: ${dubboRatioVerdict}`;

// ------------------------------------------------------------ table
const fmt = (v, d = 1) => (v === null || v === undefined ? '-' : typeof v === 'number' ? v.toFixed(d) : String(v));
const pct = (workload, system, metric) => {
  const r = medRecord(workload, system, metric);
  return r && r.rounds > 1 && r.spread_pct !== undefined ? ` ±${fmt(r.spread_pct, 1)}%` : '';
};
const print = rows => {
  const widths = rows[0].map((_, i) => Math.max(...rows.map(row => row[i].length)));
  for (const row of rows) console.log(row.map((cell, i) => cell.padEnd(widths[i])).join('  ').trimEnd());
};
const listed = a => (a.length < 2 ? a.join('') : `${a.slice(0, -1).join(', ')} and ${a[a.length - 1]}`);
console.log(`${listed(ROUND_WORKLOADS) || 'no round workload'}: median of ${rounds} round${rounds === 1 ? '' : 's'} (± = spread (max - min) / median)` +
  (has('errors') ? '; errors: one run per system' : ''));
const rows = [ [ 'workload', 'system', 'req/s', 'p50 ms', 'p99 ms', 'p99.9 ms', 'errors', 'calls', 'CPU % (load / provider / outbound / inbound)', 'CPU µs/call (same)' ] ];
const cpuCols = (get1, system) => {
  const loadPct = get1('cpu_pct_load0') !== undefined
    ? Array.from({ length: settings.load_procs || 2 }, (_, i) => get1(`cpu_pct_load${i}`) || 0).reduce((a, b) => a + b, 0) : undefined;
  const cpuText = [ loadPct, get1('cpu_pct_provider'), system === 'mesh' ? get1('cpu_pct_outbound') : null, system === 'mesh' ? get1('cpu_pct_inbound') : null ]
    .map(v => fmt(v, 0)).join(' / ');
  const usText = [ 'load', 'provider', 'outbound', 'inbound' ]
    .map(n => (system === 'direct' && [ 'outbound', 'inbound' ].includes(n) ? null : get1(`cpu_us_per_call_${n}`)))
    .map(v => fmt(v, 1)).join(' / ');
  return [ cpuText, usText ];
};
for (const workload of ROUND_WORKLOADS) {
  for (const system of SYSTEMS) {
    if (!medRecord(workload, system, 'req_per_s')) {
      rows.push([ workload, system, 'FAILED', '', '', '', '', '', '', '' ]);
      continue;
    }
    const m = metric => med(workload, system, metric);
    rows.push([ workload === 'half_load' ? `half_load (${fmt(halfRate, 0)} req/s)` : workload, system,
      fmt(m('req_per_s'), 0) + pct(workload, system, 'req_per_s'), fmt(m('latency_p50_ms'), 3),
      fmt(m('latency_p99_ms'), 3) + pct(workload, system, 'latency_p99_ms'), fmt(m('latency_p999_ms'), 3),
      fmt(m('errors'), 0), fmt(m('calls'), 0), ...cpuCols(m, system) ]);
  }
}
for (const system of has('errors') ? SYSTEMS : []) {
  const r = results.errors[system][0];
  if (!r) {
    rows.push([ 'errors', system, 'FAILED', '', '', '', '', '', '', '' ]);
    continue;
  }
  const byMetric = Object.fromEntries(metricsOf('errors', system, r).map(([ k, v ]) => [ k, v ]));
  rows.push([ 'errors', system, fmt(r.req_per_s, 0), fmt(r.latency_p50_ms, 3), fmt(r.latency_p99_ms, 3),
    fmt(r.latency_p999_ms, 3), String(r.errors), String(r.completed + r.errors), ...cpuCols(k => byMetric[k], system) ]);
}
print(rows);

console.log('');
console.log('each round (order run):');
const orders = settings.orders || [];
for (let round = 1; round <= rounds; round++) {
  const sd = get('saturation', 'direct', round, 'req_per_s');
  const sm = get('saturation', 'mesh', round, 'req_per_s');
  const pd = get('half_load', 'direct', round, 'latency_p99_ms');
  const pm = get('half_load', 'mesh', round, 'latency_p99_ms');
  const parts = [];
  if (has('saturation')) parts.push(`saturation req/s direct ${fmt(sd, 0)}, mesh ${fmt(sm, 0)} (${fmt(ratioByRound[round], 3)}x)`);
  if (has('half_load')) parts.push(`half_load p99 ms direct ${fmt(pd, 3)}, mesh ${fmt(pm, 3)} (added ${fmt(addedByRound[round], 0)} us)`);
  if (has('dubbo')) {
    parts.push(`dubbo req/s direct ${fmt(get('dubbo', 'direct', round, 'req_per_s'), 0)}, mesh ${fmt(get('dubbo', 'mesh', round, 'req_per_s'), 0)}` +
      ` (${fmt(dubboRatioByRound[round], 3)}x)`);
  }
  console.log(`  round ${round} (${orders[round - 1] || '?'}): ${parts.join('; ')}`);
}
if (meta.warmup && meta.warmup.length) {
  console.log(`warm-up (discarded), provider CPU µs/call per pass: ` +
    SYSTEMS.map(s => `${s} ${meta.warmup.filter(w => w.system === s).map(w => fmt(w.cpu_us_per_call_provider, 1)).join(', ')}`).join('; ') +
    (settings.warmup_converged ? ' (steady)' : ' (still moving at the cap)'));
}
if (meta.warmup_dubbo && meta.warmup_dubbo.length) {
  console.log(`dubbo warm-up (discarded), Dubbo provider CPU µs/call per pass: ` +
    SYSTEMS.map(s => `${s} ${meta.warmup_dubbo.filter(w => w.system === s).map(w => fmt(w.cpu_us_per_call_provider, 1)).join(', ')}`).join('; ') +
    (settings.dubbo_warmup_converged ? ' (steady)' : ' (still moving at the cap)'));
}

console.log('');
if (has('saturation')) {
  console.log(`goal: mesh throughput >= ${GOAL_RATIO} x direct: ${ratioMedian === null ? '-' : ratioMedian.toFixed(3)} x` +
    ` (median of the per-round ratios ${ratios.map(v => v.toFixed(3)).join(', ') || '-'}; direct saturation spread` +
    ` ${satDirectSpread === null ? '-' : satDirectSpread + '%'}) -> ${ratioVerdict}`);
}
if (has('half_load')) {
  console.log(`goal: added p99 <= ${GOAL_ADDED_P99_US} us at half load (${fmt(halfRate, 0)} req/s, fixed): median ${addedMedian === null ? '-' : addedMedian} us` +
    ` (per round ${added.join(', ') || '-'}; spread ${addedSpreadUs === null ? '-' : addedSpreadUs} us) -> ${addedVerdict}: ${addedWhy}`);
}
if (has('errors')) {
  const errs = results.errors.mesh[0];
  const meshErrors = errs ? errs.errors : undefined;
  const meshCalls = errs ? errs.completed + errs.errors : null;
  const roundErrors = valuesOf('saturation', 'mesh', 'errors').concat(valuesOf('half_load', 'mesh', 'errors')).reduce((a, b) => a + b, 0);
  console.log(`goal: zero errors over ${calls} calls through the mesh: ${meshErrors === undefined ? '-' : meshErrors} errors in ${meshCalls === null ? '-' : meshCalls} calls` +
    ` -> ${meshErrors === undefined ? 'n/a' : meshErrors === 0 && meshCalls >= calls ? 'met' : 'MISSED'}` +
    (calls < 1000000 ? ' (quick run: the goal is over 1,000,000)' : '') + `; ${roundErrors} errors in the mesh's rounds`);
}
if (has('dubbo')) {
  const totals = system => (dubboTotals[system] ? `${dubboTotals[system].errors} errors in ${dubboTotals[system].calls} calls` : '-');
  console.log(`goal: Dubbo 2 mesh throughput >= ${GOAL_DUBBO_RATIO} x direct: ${dubboRatioMedian === null ? '-' : dubboRatioMedian.toFixed(3)} x` +
    ` (median of the per-round ratios ${dubboRatios.map(v => v.toFixed(3)).join(', ') || '-'}; direct spread` +
    ` ${dubboDirectSpread === null ? '-' : dubboDirectSpread + '%'}) -> ${dubboRatioVerdict}`);
  console.log(`goal: Dubbo 2 zero errors through the mesh: ${totals('mesh')} over the dubbo rounds -> ${dubboErrorsVerdict}` +
    ` (direct: ${totals('direct')})`);
}
for (const workload of Object.keys(results)) {
  for (const system of SYSTEMS) {
    for (const [ round, r ] of Object.entries(results[workload][system])) {
      if (r && r.first_errors && r.first_errors.length) {
        console.log(`${workload}/${system}${round > 0 ? ` round ${round}` : ''} first errors: ${r.first_errors.join(' | ')}`);
      }
    }
  }
}

if (jsonOut) {
  const records = [ metaRecord, ...medians.values(), ...plain, ...perRound ];
  fs.writeFileSync(jsonOut, JSON.stringify(records, null, 1) + '\n');
  console.log(`\nwrote ${records.length} records to ${jsonOut}`);
}
process.exit(missing ? 1 : 0);
