// Turns realtime-bench results (results.jsonl, one JSON object per scenario and server) into the
// markdown tables, the gnuplot PNGs and docs/PERFORMANCE.md. Called by bench/run.sh.
//
//   node bench/plot.mjs --check DIR          smoke: print the table, exit 1 if a scenario failed
//   node bench/plot.mjs --docs DOCS_DIR DIR  write DOCS_DIR/PERFORMANCE.md and DOCS_DIR/perf/*.png
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";

const KEEP_MARKER = "<!-- analysis: kept across runs -->";
const ORDER = ["realtime", "bun", "node-ws", "socketio", "go-gorilla"];
const NAMES = {
  realtime: "realtime (ours)",
  bun: "Bun (uWebSockets)",
  "node-ws": "Node ws",
  socketio: "Socket.IO",
  "go-gorilla": "Go gorilla",
};

const args = process.argv.slice(2);
const mode = args[0];
const dir = mode === "--docs" ? args[2] : args[1];
const docsDir = mode === "--docs" ? args[1] : null;
if (!dir || (mode !== "--check" && mode !== "--docs")) {
  console.error("usage: plot.mjs --check DIR | --docs DOCS_DIR DIR");
  process.exit(2);
}

const results = fs.existsSync(path.join(dir, "results.jsonl"))
  ? fs.readFileSync(path.join(dir, "results.jsonl"), "utf8").split("\n").filter(Boolean).map((l) => JSON.parse(l))
  : [];
const machine = readJson(path.join(dir, "machine.json")) || {};
const commands = fs.existsSync(path.join(dir, "commands.txt")) ? fs.readFileSync(path.join(dir, "commands.txt"), "utf8") : "";
const micro = readJson(path.join(dir, "micro.json"));
const incidents = fs.existsSync(path.join(dir, "incidents.txt"))
  ? fs.readFileSync(path.join(dir, "incidents.txt"), "utf8").split("\n").filter(Boolean)
  : [];

function readJson(file) {
  try {
    return JSON.parse(fs.readFileSync(file, "utf8"));
  } catch {
    return null;
  }
}

// A scenario that runs twice is told apart: ours across pods a second time (at the 50,000/s Redis
// target; run.sh runs it after the first), and the pods' fan-out with every room on one pod.
const byScenario = {};
const keyOf = (r) =>
  r.scenario === "crosspod" && byScenario.crosspod?.[r.label] ? "crosspod-high"
  : r.scenario === "fanout-pods" && r.pod_placement === "room" ? "fanout-pods-room"
  : r.scenario;
for (const r of results) (byScenario[keyOf(r)] ||= {})[r.label] = r;
const labelsOf = (s) => Object.keys(byScenario[s] || {}).sort((a, b) => rank(a) - rank(b));
const rank = (l) => (ORDER.indexOf(l) < 0 ? 99 : ORDER.indexOf(l));
const name = (l) => NAMES[l] || l;

// ---- formatting
function num(v, digits = 0) {
  if (v === undefined || v === null || Number.isNaN(v)) return "–";
  return Number(v).toLocaleString("en-US", { maximumFractionDigits: digits, minimumFractionDigits: digits });
}
const ms = (us) => (us === undefined ? "–" : num(us / 1000, us < 10000 ? 2 : 1));
const bytes = (b) => (b === undefined ? "–" : Math.abs(b) >= 10240 ? num(b / 1024, 1) + " KiB" : num(b, 0) + " B");
const cores = (c) => (c === undefined ? "–" : num(c, 2));
function ratio(v, ours) {
  if (!v || !ours) return "–";
  return num(v / ours, 2) + "×";
}
function table(header, rows) {
  const lines = ["| " + header.join(" | ") + " |", "|" + header.map((h, i) => (i === 0 ? " --- " : " ---: ")).join("|") + "|"];
  for (const r of rows) lines.push("| " + r.join(" | ") + " |");
  return lines.join("\n");
}

// ---- tables per scenario
function idleTable() {
  const s = byScenario.idle;
  if (!s) return "";
  const ours = s.realtime;
  const rows = labelsOf("idle").map((l) => {
    const r = s[l];
    return [name(l), `${num(r.connected)} / ${num(r.connections)}`, bytes(r.server_rss_per_socket),
      ratio(r.server_rss_per_socket, ours?.server_rss_per_socket), bytes(r.kernel_tcp_mem_per_socket),
      bytes(r.kernel_slab_per_socket), num(r.unexpected_closes), cores(r.hold_server_cpu_cores),
      cores(r.generator_cpu_cores)];
  });
  return table(["server", "sockets open", "server RSS / socket", "× of ours", "kernel TCP buffers / socket",
    "kernel slab / socket (both ends)", "unexpected closes", "server CPU (hold)", "generator CPU"], rows);
}

function podsTable() {
  const s = byScenario["idle-pods"];
  if (!s) return "";
  const rows = labelsOf("idle-pods").map((l) => {
    const r = s[l];
    return [name(l), num(r.pods), `${num(r.connected)} / ${num(r.connections)}`, num(r.hold_seconds),
      num(r.unexpected_closes), num(r.open_at_end), bytes(r.server_rss_per_socket),
      bytes(r.kernel_tcp_mem_per_socket), bytes(r.kernel_slab_per_socket), cores(r.hold_server_cpu_cores)];
  });
  return table(["server", "pods", "sockets open", "held (s)", "unexpected closes", "open at the end",
    "server RSS / socket", "kernel TCP buffers / socket", "kernel slab / socket (both ends)", "pods' CPU (hold)"], rows);
}

// realtime-server's own histogram (published on the pod -> written) over the same window: the bucket bound
// under which 99 % of the writes fell ("≤ 2.5"); peers do not expose one.
const serverP99 = (r) => (r.server_latency?.p99_le_ms === undefined ? "–"
  : Number.isFinite(r.server_latency.p99_le_ms) ? `≤ ${num(r.server_latency.p99_le_ms, r.server_latency.p99_le_ms < 1 ? 2 : 1)}` : "> 1,000");

function fanoutTable(scenario) {
  const s = byScenario[scenario];
  if (!s) return "";
  const ours = s.realtime;
  const rows = labelsOf(scenario).map((l) => {
    const r = s[l];
    return [name(l), num(r.deliveries_per_sec), ratio(r.deliveries_per_sec, ours?.deliveries_per_sec),
      ms(r.latency?.p50_us), ms(r.latency?.p90_us), ms(r.latency?.p99_us), ms(r.latency?.p999_us),
      ms(r.latency?.max_us), ratio(r.latency?.p99_us, ours?.latency?.p99_us), serverP99(r),
      ms(r.generator_send_lag?.p99_us), num(r.lost), num(r.reordered), cores(r.server_cpu_cores),
      cores(r.generator_cpu_cores), cores(r.other_cpu_cores)];
  });
  return table(["server", "deliveries/s", "× of ours", "p50 ms", "p90 ms", "p99 ms", "p99.9 ms", "max ms",
    "p99 × of ours", "server-side p99 ms", "send lag p99 ms", "lost", "reordered", "server CPU", "generator CPU",
    "other CPU"], rows);
}

function saturationTable() {
  const s = byScenario.saturation;
  if (!s) return "";
  const ours = s.realtime;
  const rows = labelsOf("saturation").map((l) => {
    const r = s[l];
    // With the bisection steps the last step is not the first past the bound: that is the lowest
    // rate above the knee (every step above it was past the bound).
    const above = (r.steps || []).filter((st) => st.target_rate > r.knee_rate).sort((a, b) => a.target_rate - b.target_rate);
    const last = above[0] || r.steps?.[r.steps.length - 1] || {};
    const kneeStep = (r.steps || []).find((st) => st.target_rate === r.knee_rate) || {};
    return [name(l), num(r.knee_rate), num(r.knee_deliveries_per_sec),
      ratio(r.knee_deliveries_per_sec, ours?.knee_deliveries_per_sec), num(r.knee_p99_ms, 2),
      num(r.max_deliveries_per_sec), cores(kneeStep.server_cpu_cores), cores(kneeStep.generator_cpu_cores),
      (last.target_rate === r.knee_rate ? "none (last step) " : "") +
      `${num(last.target_rate)}/s: p99 ${ms(last.latency?.p99_us)} ms, lost ${num(last.lost)}, CPU server ` +
      `${cores(last.server_cpu_cores)} generator ${cores(last.generator_cpu_cores)} other ${cores(last.other_cpu_cores)}`];
  });
  return table(["server", "knee (publishes/s)", "deliveries/s at knee", "× of ours", "p99 ms at knee",
    "max deliveries/s seen", "server CPU at knee", "generator CPU at knee", "first step past the bound"], rows);
}

function hotroomTable() {
  const s = byScenario.hotroom;
  if (!s) return "";
  const ours = s.realtime;
  const rows = labelsOf("hotroom").map((l) => {
    const r = s[l];
    return [name(l), num(r.deliveries_per_sec), ratio(r.deliveries_per_sec, ours?.deliveries_per_sec),
      num(r.publishes_per_sec), ms(r.latency?.p50_us), ms(r.latency?.p99_us), num(r.lost),
      cores(r.server_cpu_cores), cores(r.generator_cpu_cores), cores(r.other_cpu_cores)];
  });
  return table(["server", "deliveries/s", "× of ours", "publishes/s", "p50 ms (closed loop)", "p99 ms",
    "lost", "server CPU", "generator CPU", "other CPU"], rows);
}

function connectTable() {
  const s = byScenario.connect;
  if (!s) return "";
  const ours = s.realtime;
  const rows = labelsOf("connect").map((l) => {
    const r = s[l];
    return [name(l), `${num(r.connected)} / ${num(r.connections)}`, num(r.upgrades_per_sec),
      ratio(r.upgrades_per_sec, ours?.upgrades_per_sec), ms(r.latency?.p50_us), ms(r.latency?.p99_us),
      cores(r.server_cpu_cores), cores(r.generator_cpu_cores), cores(r.other_cpu_cores)];
  });
  return table(["server", "upgraded", "upgrades/s", "× of ours", "p50 ms", "p99 ms", "server CPU",
    "generator CPU", "other CPU"], rows);
}

function crosspodTable() {
  const s = byScenario.crosspod;
  if (!s) return "";
  const high = byScenario["crosspod-high"]?.realtime;
  const rows = [...labelsOf("crosspod").map((l) => s[l]), ...(high ? [high] : [])].map((r) => {
    const l = r.label;
    return [name(l), num(r.publishes_per_sec), num(r.redis_publishes_per_sec), num(r.deliveries_per_sec), ms(r.latency_same_pod?.p50_us),
      ms(r.latency_same_pod?.p99_us), ms(r.latency_cross_pod?.p50_us), ms(r.latency_cross_pod?.p99_us),
      ms(r.cross_pod_extra_p99_us), num(r.lost), cores(r.redis_cpu_cores), cores(r.server_cpu_cores),
      cores(r.generator_cpu_cores), cores(r.other_cpu_cores)];
  });
  return table(["server (2 pods + Redis)", "publishes/s offered", "Redis PUBLISH/s", "deliveries/s", "same-pod p50 ms", "same-pod p99 ms",
    "cross-pod p50 ms", "cross-pod p99 ms", "extra p99 ms", "lost", "Redis CPU", "servers CPU", "generator CPU",
    "other CPU"], rows);
}

// Small rooms past one process: 100,000 sockets over several pods, both placements (ours only).
function fanoutPodsTable() {
  const rows = ["fanout-pods", "fanout-pods-room"].map((k) => byScenario[k]?.realtime).filter(Boolean).map((r) => [
    r.pod_placement === "room" ? "each room on one pod" : "each room over every pod", num(r.connected),
    num(r.deliveries_per_sec), ms(r.latency?.p50_us), ms(r.latency?.p90_us), ms(r.latency?.p99_us),
    ms(r.latency?.p999_us), ms(r.latency?.max_us), serverP99(r), ms(r.generator_send_lag?.p99_us), num(r.lost),
    num(r.reordered), cores(r.server_cpu_cores), cores(r.redis_cpu_cores), cores(r.generator_cpu_cores),
    cores(r.other_cpu_cores)]);
  if (rows.length === 0) return "";
  return table(["placement", "sockets", "deliveries/s", "p50 ms", "p90 ms", "p99 ms", "p99.9 ms", "max ms",
    "server-side p99 ms", "send lag p99 ms", "lost", "reordered", "pods' CPU", "Redis CPU", "generator CPU",
    "other CPU"], rows);
}

function microTable() {
  if (!micro?.benchmarks) return "";
  const rows = micro.benchmarks
    .filter((b) => b.run_type !== "aggregate")
    .map((b) => [b.name, num(b.real_time, 1) + " " + b.time_unit,
      b.bytes_per_second ? num(b.bytes_per_second / 1e6, 0) + " MB/s" : "",
      b.items_per_second ? num(b.items_per_second / 1e6, 2) + " M/s" : ""]);
  return table(["benchmark", "time", "bytes", "items"], rows);
}

// ---- targets
// What makes a row's figures no measure of the target: sockets that did not open, losses,
// misrouted messages, unexpected closes. A verdict on such a row says so.
function flaws(r, wanted = r.connections) {
  const out = [];
  if (wanted && r.connected < wanted) out.push(`${num(r.connected)} of ${num(wanted)} sockets open`);
  if (r.connect_failed > 0) out.push(`${num(r.connect_failed)} connections failed`);
  if (r.lost > 0) out.push(`${num(r.lost)} lost`);
  if (r.misrouted > 0) out.push(`${num(r.misrouted)} delivered to another room`);
  if (r.unexpected_closes > 0) out.push(`${num(r.unexpected_closes)} unexpected closes`);
  return out;
}
// outcome: true ("met"), false ("missed") or the verdict's text; rows: every result the figure
// comes from, each a result or [result, sockets wanted]. A ratio needs both of its rows sound.
function verdict(outcome, ...rows) {
  const f = rows.flatMap((x) => {
    const [r, wanted] = Array.isArray(x) ? x : [x];
    const own = flaws(r, wanted);
    return rows.length > 1 && own.length ? [`${name(r.label)}: ${own.join(", ")}`] : own;
  });
  if (f.length) return `not valid (${f.join("; ")})`;
  return outcome === true ? "met" : outcome === false ? "missed" : outcome;
}

function targetsTable() {
  const rows = [];
  const idle = byScenario.idle?.realtime;
  if (idle) {
    const v = idle.server_rss_per_socket;
    rows.push(["Idle memory (server user space, per socket)", "≤ 2 KB at 19,000 sockets (aim 1 KB)",
      `${bytes(v)} at ${num(idle.connected)}`, verdict(v <= 2048, [idle, 19000])]);
  }
  const pods = byScenario["idle-pods"]?.realtime;
  if (pods) {
    const ok = pods.connected >= 100000 && pods.unexpected_closes === 0 && pods.open_at_end === pods.connected;
    rows.push([`${num(pods.connections)} sockets over ${pods.pods} pods on one Redis`,
      "held 2 minutes, no unexpected close",
      `${num(pods.connected)} open, held ${num(pods.hold_seconds)} s, ${num(pods.unexpected_closes)} unexpected closes`,
      ok && pods.hold_seconds >= 120 ? "met" : "missed"]);
  }
  const hot = byScenario.hotroom;
  if (hot?.realtime) {
    const v = hot.realtime.deliveries_per_sec;
    const bun = hot.bun?.deliveries_per_sec;
    const ws = hot["node-ws"]?.deliveries_per_sec;
    // A generator at a full core may bound the rate it reads as much as the server does.
    const busy = (r) => (r.generator_cpu_cores >= 0.95 ? " (generator at a full core)" : "");
    rows.push(["Hot room 1 × 1,000 deliveries/s", "≥ 1,000,000 (aim 2M)", num(v) + busy(hot.realtime), verdict(v >= 1e6, hot.realtime)]);
    if (bun) rows.push(["Hot room vs Bun", "≥ 1.2×", num(v / bun, 2) + "×" + busy(hot.bun), verdict(v / bun >= 1.2, hot.realtime, hot.bun)]);
    else if (hot.bun) rows.push(["Hot room vs Bun", "≥ 1.2×", "– (the Bun run failed)", "not measured"]);
    if (ws) rows.push(["Hot room vs Node ws", "≥ 5×", num(v / ws, 2) + "×", verdict(v / ws >= 5, hot.realtime, hot["node-ws"])]);
    else if (hot["node-ws"]) rows.push(["Hot room vs Node ws", "≥ 5×", "– (the Node ws run failed)", "not measured"]);
  }
  // The target is stated for 10,000 × 10: the one-pod row (1,800 × 10, what one process holds) is
  // shown for comparison with the peers, its verdict comes from the pods' rows.
  const smallRooms = (label, f, targetShape) => {
    const p99 = f.latency?.p99_us / 1000;
    const ok = p99 <= 5 && f.deliveries_per_sec >= 99000;
    rows.push([`Small rooms (${num(f.rooms)} × ${f.members}, ${num(f.deliveries_per_sec)} deliveries/s) p99${label}`,
      "≤ 5 ms (aim 2 ms) at 100,000 deliveries/s", num(p99, 2) + " ms",
      targetShape ? verdict(ok, f) : verdict("not the target's shape", f)]);
  };
  const f = byScenario.fanout?.realtime;
  if (f) smallRooms(", one pod", f, false);
  for (const [k, label] of [["fanout-pods", "each room over every pod"], ["fanout-pods-room", "each room on one pod"]]) {
    const r = byScenario[k]?.realtime;
    if (r) smallRooms(`, ${r.pods} pods + Redis, ${label}`, r, true);
  }
  const x = byScenario.crosspod?.realtime;
  if (x) {
    const extra = x.cross_pod_extra_p99_us / 1000;
    rows.push(["Cross-pod extra p99 over same-pod", "≤ 2 ms", num(extra, 2) + " ms", verdict(extra <= 2, x)]);
  }
  // Redis's CPU is stated at the rate Redis processed (its PUBLISH count over the window), not at
  // the rate offered: the pods saturate before Redis, which then gets fewer than 50,000/s.
  const high = byScenario["crosspod-high"]?.realtime;
  const redisAt = (r) => {
    const done = r.redis_publishes_per_sec;
    const usPer = done > 0 ? `; ${num((r.redis_cpu_cores * 1e6) / done, 1)} µs of Redis CPU per message` : "";
    return `${num(r.redis_cpu_cores * 100, 1)} % at ${num(done)} publishes/s processed (offered ${num(r.publishes_per_sec)}/s${usPer})`;
  };
  if (high && high.redis_publishes_per_sec !== undefined) {
    const done = high.redis_publishes_per_sec;
    const outcome = done >= 0.98 * 50000 && high.redis_cpu_cores < 0.25 ? true
      : high.redis_cpu_cores >= 0.25 ? false : `not shown (Redis reached only ${num(done)}/s)`;
    rows.push(["Redis CPU at 50,000 publishes/s", "< 25% of a core", redisAt(high), verdict(outcome, high)]);
  } else if (high || x) {
    // No run at the target's rate with Redis's own count: what there is, and no verdict.
    const r = high || x;
    rows.push(["Redis CPU at 50,000 publishes/s", "< 25% of a core",
      r.redis_publishes_per_sec !== undefined ? redisAt(r)
        : `${num(r.redis_cpu_cores * 100, 1)} % at ${num(r.publishes_per_sec)}/s offered (Redis's own count not read)`,
      "not measured at 50,000/s"]);
  }
  const c = byScenario.connect?.realtime;
  if (c) rows.push(["Connect storm", "≥ 15,000 upgrades/s", num(c.upgrades_per_sec), verdict(c.upgrades_per_sec >= 15000, c)]);
  return table(["target", "wanted", "measured", "verdict"], rows);
}

// ---- checks (smoke)
function check() {
  const problems = [];
  for (const r of results) {
    const where = `${r.scenario}/${r.label}`;
    if (!(r.connected > 0)) problems.push(`${where}: no connection`);
    if (r.connect_failed > 0) problems.push(`${where}: ${r.connect_failed} connections failed`);
    if (["fanout", "crosspod", "fanout-pods", "hotroom"].includes(r.scenario) && !(r.delivered > 0)) problems.push(`${where}: nothing delivered`);
    if (r.scenario === "saturation" && !(r.steps?.[0]?.delivered > 0)) problems.push(`${where}: nothing delivered`);
    if (r.scenario === "connect" && !(r.upgrades_per_sec > 0)) problems.push(`${where}: no upgrade`);
  }
  if (results.length === 0) problems.push("no results");
  return problems;
}

// Not failures of the smoke run (it checks that every scenario runs, not how well), but worth a look.
function warnings() {
  const out = [];
  for (const r of results) {
    const where = `${r.scenario}/${r.label}`;
    const steps = r.scenario === "saturation" ? r.steps || [] : [r];
    for (const st of steps) {
      if (st.lost > 0) out.push(`${where}: ${st.lost} of ${st.expected} deliveries lost`);
      if (st.reordered > 0) out.push(`${where}: ${st.reordered} deliveries out of order`);
      if (st.duplicates > 0) out.push(`${where}: ${st.duplicates} duplicate deliveries`);
      if (st.misrouted > 0) out.push(`${where}: ${st.misrouted} messages delivered to another room`);
    }
    if (r.scenario === "crosspod" && !(r.latency_cross_pod?.count > 0)) out.push(`${where}: no delivery crossed pods`);
    if (r.unexpected_closes > 0) out.push(`${where}: ${r.unexpected_closes} sockets closed unexpectedly`);
  }
  return out;
}

// ---- plots
function writePlots(perfDir) {
  const written = [];
  const gp = [];
  const palette = { realtime: "#d62728", bun: "#1f77b4", "node-ws": "#2ca02c", socketio: "#9467bd", "go-gorilla": "#ff7f0e" };
  const color = (l) => palette[l] || "#444444";
  const sat = byScenario.saturation;
  if (sat) {
    const plots = [];
    for (const l of labelsOf("saturation")) {
      const r = sat[l];
      const file = `saturation-${l}.dat`;
      const lines = ["# offered_deliveries_per_sec delivered_per_sec p50_ms p90_ms p99_ms p999_ms"];
      for (const st of [...(r.steps || [])].sort((a, b) => a.target_rate - b.target_rate)) {
        const offered = st.target_rate * r.members;
        lines.push([offered, st.deliveries_per_sec, st.latency.p50_us / 1000, st.latency.p90_us / 1000,
          st.latency.p99_us / 1000, st.latency.p999_us / 1000].join(" "));
      }
      fs.writeFileSync(path.join(perfDir, file), lines.join("\n") + "\n");
      plots.push(`'${file}' using 1:5 with linespoints lw 2 pt 7 lc rgb '${color(l)}' title '${name(l)} p99'`);
      plots.push(`'${file}' using 1:3 with linespoints lw 1 dt 2 pt 6 lc rgb '${color(l)}' title '${name(l)} p50'`);
    }
    gp.push("set output 'latency.png'",
      `set title 'Latency vs load (${sat.realtime?.rooms ?? ""} rooms × ${sat.realtime?.members ?? ""} members, open loop)'`,
      "set xlabel 'offered deliveries/s'", "set ylabel 'latency from scheduled send (ms)'", "set logscale y",
      "set format x '%.0s%c'", "set key top left", `plot ${plots.join(", ")}`, "unset logscale y", "set format x '%g'");
    written.push("latency.png");
  }
  const idle = byScenario.idle;
  if (idle) {
    const plots = [];
    for (const l of labelsOf("idle")) {
      const r = idle[l];
      const file = `idle-${l}.dat`;
      const lines = ["# sockets server_rss_delta_mb kernel_tcp_per_socket kernel_slab_per_socket"];
      lines.push("0 0 0 0");
      for (const st of r.steps || []) lines.push([st.sockets, st.server_rss_delta / 1048576, st.kernel_tcp_mem_per_socket, st.kernel_slab_per_socket].join(" "));
      fs.writeFileSync(path.join(perfDir, file), lines.join("\n") + "\n");
      plots.push(`'${file}' using 1:2 with linespoints lw 2 pt 7 lc rgb '${color(l)}' title '${name(l)}'`);
    }
    gp.push("set output 'memory.png'", "set title 'Server memory vs idle sockets (RSS growth)'",
      "set xlabel 'open sockets'", "set ylabel 'server RSS growth (MiB)'", "set key top left",
      `plot ${plots.join(", ")}`);
    written.push("memory.png");
  }
  const hot = byScenario.hotroom;
  if (hot) {
    const file = "hotroom.dat";
    const labels = labelsOf("hotroom");
    fs.writeFileSync(path.join(perfDir, file), labels.map((l, i) => `${i} "${name(l)}" ${hot[l].deliveries_per_sec} ${color(l).replace("#", "0x")}`).join("\n") + "\n");
    gp.push("set output 'hotroom.png'", "set title 'Hot room: 1 room × 1,000 members'",
      "set xlabel ''", "set ylabel 'deliveries/s'", "set style fill solid 0.8", "set boxwidth 0.6", "set key off",
      "set yrange [0:*]", "set format y '%.1s%c'",
      `plot '${file}' using 1:3:4:xtic(2) with boxes lc rgb variable`, "set format y '%g'", "set yrange [*:*]");
    written.push("hotroom.png");
  }
  if (gp.length === 0) return [];
  const script = ["set terminal pngcairo size 900,540 enhanced font 'DejaVu Sans,10'", "set grid", ...gp].join("\n") + "\n";
  const scriptFile = path.join(perfDir, "plots.gp");
  fs.writeFileSync(scriptFile, script);
  try {
    execFileSync("gnuplot", ["plots.gp"], { stdio: "inherit", cwd: perfDir });
  } catch (e) {
    try {  // gnuplot-nox may lack cairo: fall back to the gd png terminal
      fs.writeFileSync(scriptFile, script.replace("pngcairo size 900,540 enhanced font 'DejaVu Sans,10'", "png size 900,540"));
      execFileSync("gnuplot", ["plots.gp"], { stdio: "inherit", cwd: perfDir });
    } catch (e2) {
      console.error("gnuplot failed: " + e2.message);
      return [];
    }
  }
  return written;
}

// ---- the document
function sections() {
  const out = [];
  const add = (title, body, note) => {
    if (!body) return;
    out.push(`### ${title}\n`);
    if (note) out.push(note + "\n");
    out.push(body + "\n");
  };
  const f = byScenario.fanout?.realtime;
  const sat = byScenario.saturation?.realtime;
  const idle = byScenario.idle?.realtime;
  const hot = byScenario.hotroom?.realtime;
  const con = byScenario.connect?.realtime;
  const x = byScenario.crosspod?.realtime;
  add("Idle sockets", idleTable(), idle && `${num(idle.connections)} sockets in rooms of ${idle.members_per_room}, opened from ` +
    `${idle.generator_processes} generator processes over several 127.0.0.x source addresses, held ${idle.hold_seconds} s. ` +
    "Server RSS per socket is the growth of the server's VmRSS over its fresh-start value, divided by the sockets; " +
    "kernel figures are deltas of /proc/net/sockstat `TCP mem` and of `Slab` in /proc/meminfo over the same interval " +
    "(both ends of each loopback connection, so roughly half is the server's).");
  const pods = byScenario["idle-pods"]?.realtime;
  add("Idle sockets over several pods", podsTable(), pods && `${num(pods.connections)} sockets in rooms of ` +
    `${pods.members_per_room} over ${pods.pods} pods sharing one redis-server, from ${pods.generator_processes} ` +
    `generator processes, held ${pods.hold_seconds} s; memory figures are summed over the pods.`);
  add("Small rooms (fan-out)", fanoutTable("fanout"), f && `${num(f.rooms)} rooms × ${f.members} members, ${num(f.publishers)} publishers ` +
    `at ${num(f.target_rate)} publishes/s in total (open loop), latency from each message's scheduled send time to its receipt by each ` +
    "member. \"server-side p99\" is from realtime-server's own histogram (`realtime_broadcast_latency_seconds`, a message published → " +
    "written to a socket) over the same window: the bucket bound under which 99 % of the writes fell. \"send lag\" is the " +
    "generator's own delay, from a message's scheduled time to its write: a part of every latency in the row.");
  add("Saturation (knee)", saturationTable(), sat && `${num(sat.rooms)} rooms × ${sat.members}; the publish rate grows by steps ` +
    `until p99 passes ${sat.p99_bound_ms} ms (or more than 0.1 % of the messages are lost, or a socket closes), then two more ` +
    "steps halve the gap between the last rate within the bound and the first past it; the knee is the highest rate within " +
    "the bound; \"max deliveries/s seen\" is the most any step sustained.");
  add("Hot room", hotroomTable(), hot && `1 room × ${num(hot.members)} members; ${hot.publishers} publishers each keep ${hot.window} ` +
    "messages in flight (closed loop: the rate is whatever the server sustains; latency here is from the actual send). " +
    "The Go peer runs with a per-client buffer of 1,024 messages here (gorilla's example has 256, fewer than the " +
    `${num(hot.publishers * hot.window)} in flight: its hub would drop every member). The generator reads with one thread: ` +
    "where its CPU is near 1.00, how fast it reads bounds the rate as much as the server does (the targets table says so).");
  add("Connect storm", connectTable(), con && `${num(con.connections)} WebSocket upgrades, ${con.concurrency} in flight, each socket ` +
    "alone in its room; from the first connect() to the last welcome message.");
  add("Cross-pod (Redis)", crosspodTable(), x && `${num(x.rooms)} rooms × ${x.members} members spread over 2 pods on one redis-server, ` +
    `${num(x.target_rate)} publishes/s; latency split by whether the receiver is on the publisher's pod. Ours runs a second ` +
    "time at 50,000 publishes/s offered for Redis's CPU at the target's rate: that row saturates the machine (the pods' " +
    "delivery, not Redis, is the bound there, so Redis processes fewer: \"Redis PUBLISH/s\", from its `INFO commandstats` " +
    "over the same window; one `PUBLISH` per message for ours, per broadcast for Socket.IO's adapter), so only its Redis " +
    "CPU is the point, not its latency. Ours delivers even to its own " +
    "pod's members once Redis has numbered the message, so its same-pod figure already includes a Redis round trip; " +
    "Socket.IO's same-pod delivery is local.");
  const fp = byScenario["fanout-pods"]?.realtime || byScenario["fanout-pods-room"]?.realtime;
  add("Small rooms over several pods", fanoutPodsTable(), fp && `${num(fp.rooms)} rooms × ${fp.members} members ` +
    `(${num(fp.connections)} sockets) over ${fp.pods} pods on one redis-server, from ${fp.generator_processes} generator ` +
    `processes, ${num(fp.target_rate)} publishes/s in total (open loop). Each room's members either spread over every pod ` +
    "(a load balancer without affinity: every message crosses Redis to every pod) or all on one pod (a load balancer " +
    "routing by the `/ws/{room}` path). Everything (pods, Redis, generators) shares the 2 cores.");
  add("Codec micro-benchmarks (realtime-micro)", microTable(), "Google Benchmark, one thread, this machine.");
  return out.join("\n");
}

function writeDocs() {
  const perfDir = path.join(docsDir, "perf");
  fs.mkdirSync(perfDir, { recursive: true });
  const plots = writePlots(perfDir);
  const docFile = path.join(docsDir, "PERFORMANCE.md");
  let kept = "";
  if (fs.existsSync(docFile)) {
    const old = fs.readFileSync(docFile, "utf8");
    const at = old.indexOf(KEEP_MARKER);
    if (at >= 0) kept = old.slice(at + KEEP_MARKER.length).replace(/^\n+/, "");
  }
  const peers = [...new Set(results.map((r) => r.label))].sort((a, b) => rank(a) - rank(b));
  const doc = `# Performance

Generated by \`bench/run.sh\` on ${machine.date || "?"} from commit \`${machine.commit || "?"}\`${machine.dirty ? " (with uncommitted changes)" : ""}.
Everything above the analysis section is rewritten by each run; the raw results are in
[perf/results.jsonl](perf/results.jsonl) and the exact commands in [perf/commands.txt](perf/commands.txt).

## Machine

| | |
| --- | --- |
| CPU | ${machine.cpu || "?"} (${machine.cores || "?"} cores, shared by the server, the generator and Redis) |
| memory | ${machine.memory_gb || "?"} GB |
| OS | ${machine.os || "?"}, kernel ${machine.kernel || "?"} |
| realtime-server | ${machine.compiler || "?"}, \`--threads ${machine.server_threads ?? "?"}\`, rate limit off |
| peers | Bun ${machine.bun || "?"}, Node ${machine.node || "?"} (ws, Socket.IO), ${machine.go || "?"} (gorilla/websocket), Redis ${machine.redis || "?"}; Bun, Node ws and Socket.IO run their JavaScript on one thread, Go on every core (GOMAXPROCS default) |
| load average before the run | ${machine.load_before || "?"} |
| run time | ${machine.elapsed_seconds ?? "?"} s |

Servers compared: ${peers.map(name).join(", ")}. All speak the same protocol at \`/ws/{room}\` (Socket.IO with its
own framing), all on loopback, no TLS, no compression, ~100-byte chat messages. "× of ours" is the peer's figure
divided by ours. "deliveries/s" counts the deliveries received within the measured window (after a warm-up),
per second: what the server sustained, below publishes × members when a backlog grows. CPU columns are cores used
on average over the same window (1.00 = one core busy) from /proc/PID/stat, for the server and for the generator,
so it shows which side was saturated; "other CPU" is what the rest of the machine used at the same time (from
/proc/stat): anything well above 0 there means the figures of that row are pessimistic. A target's verdict is
"not valid" when its row (or, for a ratio, either row) lost messages, delivered one to another room, did not open
every socket, or saw a socket closed.

## How to reproduce

\`\`\`sh
bench/run.sh            # everything, < 15 minutes; rewrites this file and docs/perf/
bench/run.sh --smoke    # each scenario once, tiny, realtime-server only (CI)
\`\`\`

## Targets

${targetsTable()}
${incidents.length ? "\n**Incidents during this run** (the figures of these rows are not valid):\n\n" + incidents.map((i) => "- " + i).join("\n") + "\n" : ""}
## Results

${sections()}
${plots.length ? "## Plots\n\n" + plots.map((p) => `![${p}](perf/${p})`).join("\n\n") + "\n" : ""}
## Method

- The generator (\`realtime-bench\`, C++20, Boost.Asio) does the HTTP upgrade by hand on raw TCP sockets and
  parses frames with the server's own \`FrameParser\`; it reads each socket into one per-thread buffer and finds
  the sequence number, scheduled time and publisher it embedded in \`data\` with a scan, not a JSON parse.
- Open loop: message k of a run is due at start + k / rate whatever happened before; it carries that time, and
  latency is measured from it, so a stalled server or generator shows up as latency (no coordinated omission).
- Latency is kept in a log-linear histogram (HdrHistogram style, < 0.4% relative error); percentiles are exact
  to that precision. Loss = deliveries expected (each publish × its room's members) − deliveries received after a
  drain; reordering = a sequence number below one already seen from the same publisher on the same socket; a
  number seen before (tracked for the 64 below the highest) is a duplicate, and a message from a publisher of
  another room is misrouted: neither counts as a delivery.
- Each scenario starts a fresh server process, so memory figures start from a clean process.
- Limits of this machine: 20,000 open files per process (hard), so one server process holds at most ~19,990
  sockets and one generator process 18,000; the idle scenarios use several generator processes, the
  side-by-side fan-out uses 1,800 × 10 rooms on one pod, and the 10,000 × 10 target shape (100,000 sockets)
  runs over 6 pods and 6 generator processes. 127.0.0.1–127.0.0.4 are used as source addresses (~28k ports
  each per destination).

## Exact commands

\`\`\`
${commands.trim()}
\`\`\`

${KEEP_MARKER}

${kept || "## Analysis\n\n(What bounds each figure, with profiles, goes here; this section is kept across runs.)\n"}`;
  fs.writeFileSync(docFile, doc);
  console.log(`wrote ${docFile} and ${plots.length} plot(s)`);
}

if (mode === "--check") {
  for (const s of ["idle", "idle-pods", "fanout", "saturation", "hotroom", "connect", "crosspod", "fanout-pods"]) {
    const t = s === "idle" ? idleTable() : s === "idle-pods" ? podsTable() : s === "saturation" ? saturationTable() : s === "hotroom" ? hotroomTable()
      : s === "connect" ? connectTable() : s === "crosspod" ? crosspodTable() : s === "fanout-pods" ? fanoutPodsTable() : fanoutTable(s);
    if (t) console.log(`\n${s}\n${t}`);
  }
  const problems = check();
  for (const i of incidents) problems.push(i);
  for (const w of warnings()) console.error("smoke: warning: " + w);
  for (const p of problems) console.error("smoke: " + p);
  console.log(problems.length ? `\nsmoke: ${problems.length} problem(s)` : `\nsmoke: ${results.length} scenario(s) ok`);
  process.exit(problems.length ? 1 : 0);
} else {
  writeDocs();
}
