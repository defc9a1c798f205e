"""docs/benchmarks.md from one harness result: machine, targets (met / not met), tables.

A hand-written block between ``<!-- keep:start -->`` and ``<!-- keep:end -->`` in the existing
file (profile, analysis) survives regeneration.
"""

from __future__ import annotations

import re
import statistics
from pathlib import Path
from typing import Any

# Everything from the keep marker to the end survives: the hand-written analysis and the sections
# other benchmarks append after it (operator memory, probe flood).
KEEP = re.compile(r"<!-- keep:start -->.*", re.S)
GO_MSG_PER_S = 1960.0
# The Go Carrier v0.2.1's whole-process CPU per 1 000 messages in issue 15's independent harness
# (moto, nginx, 20 000 messages, 2 cores): the reference when no binary ran in the same run
# (``bench.run --reference-cmd``), and then not a verdict: other days, other servers.
GO_WHOLE_CPU_MS = {"b10-r1-w10": (217 + 287 + 247) / 3, "b1-r1-w1": 893.0}
CPU_TARGETS = {"b10-r1-w10": 1.25, "b1-r1-w1": 1.5}  # whole-process CPU, at most x the Go Carrier
STARTUP_CPU_TARGET_S = 0.5
SERVER_BOUND_SHARE = 0.85
ADMISSION_DOC = "admission-latency.md"


def med(runs: list[dict[str, Any]], key: str) -> float | None:
    values = [r[key] for r in runs if isinstance(r.get(key), int | float)]
    return statistics.median(values) if values else None


def fmt(value: float | None, digits: int = 0, unit: str = "") -> str:
    if value is None:
        return "n/a"
    return f"{value:,.{digits}f}{unit}".replace(",", " ")


def one_line(key: str, index: int, run: dict[str, Any], server: str = "fauxqs") -> str:
    return (
        f"{key} run {index + 1}: {fmt(run.get('msg_per_s'))} msg/s, "
        f"{fmt(run.get('cpu_ms_per_1000'))} ms CPU/1000 steady, "
        f"{fmt(run.get('whole_cpu_ms_per_1000'))} whole, start-up "
        f"{fmt(run.get('ready_wall_s'), 2)} s / {fmt(run.get('ready_cpu_s'), 2)} s CPU, peak {fmt(run.get('peak_rss_mb'), 1)} MB, "
        f"idle {fmt(run.get('idle_pss_mb'), 1)} MB PSS ({fmt(run.get('idle_rss_mb'), 1)} RSS), {fmt(run.get('requests_per_msg'), 3)} req/msg, "
        f"dup {run.get('duplicates')}, p50 {fmt(run.get('latency_p50_ms'), 1)} ms, "
        f"{server} {fmt(100 * (run.get('server_cpu_share') or 0))}% CPU"
    )


def _mark(met: bool | None) -> str:
    return {True: "**met**", False: "**not met**", None: "not measured"}[met]


def targets(result: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    cfgs = result.get("configs", {})

    def runs(key: str) -> list[dict[str, Any]]:
        return list(cfgs.get(key, {}).get("runs", []))

    rows: list[tuple[str, str, str, str]] = []
    main, wide, mixed = runs("b10-r1-w10"), runs("b10-r4-w10"), runs("b10-r1-w10-mixed")

    reference = result.get("reference", {}).get("configs", {})
    for key, factor in CPU_TARGETS.items():
        whole = med(runs(key), "whole_cpu_ms_per_1000")
        same_run = med(reference.get(key, {}).get("runs", []), "whole_cpu_ms_per_1000")
        go = same_run if same_run is not None else GO_WHOLE_CPU_MS[key]
        where = "the reference binary in this run" if same_run is not None else "issue 15's harness"
        label = key.removeprefix("b").replace("-r", " / ").replace("-w", " / ")
        ratio = f", {whole / go:.2f} x" if whole is not None and same_run is not None else ""
        rows.append(
            (
                f"Whole-process CPU per 1 000 msgs (spawn → drained), batch {label}",
                f"≤ {factor} x Go's {go:.0f} ms = {factor * go:.0f} ms ({where})",
                fmt(whole, 0, " ms")
                + f" (steady state {fmt(med(runs(key), 'cpu_ms_per_1000'), 0, ' ms')}{ratio})",
                _mark(None if whole is None else whole <= factor * go)
                if same_run is not None
                else "not a verdict (no same-run reference)",
            )
        )
    ready_cpu, ready_wall = med(main, "ready_cpu_s"), med(main, "ready_wall_s")
    rows.append(
        (
            "Start-up CPU, exec → first ReceiveMessage (10 / 1 / 10)",
            f"≤ {STARTUP_CPU_TARGET_S} s",
            f"{fmt(ready_cpu, 2, ' s')} ({fmt(ready_wall, 2, ' s')} wall)",
            _mark(None if ready_cpu is None else ready_cpu <= STARTUP_CPU_TARGET_S),
        )
    )

    rate, share = med(main, "msg_per_s"), med(main, "server_cpu_share")
    bound = share is not None and share >= SERVER_BOUND_SHARE
    note = (
        f" ({result['server']['kind']} at {fmt(100 * share)} % of a core{': server-bound' if bound else ''})"
        if share is not None
        else ""
    )
    same_rate = med(reference.get("b10-r1-w10", {}).get("runs", []), "msg_per_s")
    if same_rate is not None:
        note += f"; the reference binary in this run: {fmt(same_rate, 0, ' msg/s')}"
    met = None if rate is None else (True if rate >= GO_MSG_PER_S else (None if bound else False))
    verdict = (
        _mark(met) if met is not None or rate is None else "**server-bound**: not decidable here"
    )
    rows.append(
        (
            "Throughput, batch 10 / 1 / 10",
            f"≥ Go Carrier's ~{GO_MSG_PER_S:.0f} msg/s",
            fmt(rate, 0, " msg/s") + note,
            verdict,
        )
    )

    mixed_rate = med(mixed, "msg_per_s")
    hol = head_of_line_bound()
    rows.append(
        (
            "Throughput, mixed-latency webhook (5 % take 500 ms), 10 / 1 / 10",
            f"ahead of a head-of-line consumer (≤ ~{hol:.0f} msg/s here)",
            fmt(mixed_rate, 0, " msg/s"),
            _mark(None if mixed_rate is None else mixed_rate > hol),
        )
    )

    for label, group in (("batch 10 / 1 / 10", main), ("batch 10 / 4 / 10", wide)):
        rpm = med(group, "requests_per_msg")
        rows.append(
            (
                f"SQS requests per message, {label}",
                "≤ 0.21",
                fmt(rpm, 3),
                _mark(None if rpm is None else rpm <= 0.21),
            )
        )

    idle = med(wide, "idle_receives_per_receiver_min")
    window = result.get("idle_cost_window")
    extra = (
        f" (over {fmt(window)} s{', extrapolated to a minute' if window and window < 60 else ''})"
        if idle is not None
        else ""
    )
    rows.append(
        (
            "Idle empty receives per receiver per minute (4 receivers)",
            "≤ 3",
            fmt(idle, 1) + extra,
            _mark(None if idle is None else idle <= 3),
        )
    )

    idle_pss, idle_rss = med(main, "idle_pss_mb"), med(main, "idle_rss_mb")
    rows.append(
        (
            "Idle memory (5 s after drain), batch 10 / 1 / 10: PSS of the process tree",
            "≤ 50 MB",
            f"{fmt(idle_pss, 1, ' MB')} (the sidecar process's own RSS {fmt(idle_rss, 1, ' MB')})",
            _mark(None if idle_pss is None else idle_pss <= 50),
        )
    )
    peak = med(main, "peak_rss_mb")
    rows.append(
        (
            "Peak memory (tree PSS, or the sidecar's RSS high-water mark), batch 10 / 1 / 10",
            "≤ 70 MB",
            fmt(peak, 1, " MB"),
            _mark(None if peak is None else peak <= 70),
        )
    )

    p50 = med(main, "latency_p50_ms")
    rows.append(
        (
            "send→POST latency p50, idle long-polling sidecar (10 / 1 / 10)",
            "≤ 50 ms",
            fmt(p50, 1, " ms"),
            _mark(None if p50 is None else p50 <= 50),
        )
    )
    rows.append(
        (
            "Admission webhook p99 at 50 req/s over HTTPS",
            "≤ 20 ms",
            f"see [{ADMISSION_DOC}]({ADMISSION_DOC})",
            "measured there",
        )
    )
    return rows


def head_of_line_bound() -> float:
    """A consumer that waits for its whole batch of 10: half the batches hold a slow id (every
    20th), each such batch takes ≥ 0.5 s, so ≤ 10 / (0.5 x 0.5) msg/s per receiver."""
    return 10 / (0.5 * 0.5)


ROWS = (
    ("messages", "messages", 0, ""),
    ("msg_per_s", "throughput (msg/s)", 0, ""),
    ("whole_msg_per_s", "whole-process throughput, spawn → drained (msg/s)", 0, ""),
    ("cpu_ms_per_1000", "steady-state CPU per 1 000 msgs, first POST → drained (ms)", 0, ""),
    ("whole_cpu_ms_per_1000", "whole-process CPU per 1 000 msgs, spawn → drained (ms)", 0, ""),
    ("system_cpu_share", "share of the steady-state CPU in the kernel (stime)", 2, ""),
    ("ready_wall_s", "start-up wall time, exec → first ReceiveMessage (s)", 2, ""),
    ("ready_cpu_s", "start-up CPU, exec → first ReceiveMessage (s)", 2, ""),
    ("startup_cpu_s", "CPU by the first POST (s)", 2, ""),
    ("sidecar_cpu_share", "sidecar CPU share while draining (cores)", 2, ""),
    ("run_queue_wait_share", "sidecar time runnable but waiting for a core (share of wall)", 2, ""),
    ("server_cpu_share", "SQS server CPU share while draining (cores)", 2, ""),
    ("webhook_cpu_share", "webhook receiver CPU share (cores)", 2, ""),
    ("peak_rss_mb", "peak RSS (MB)", 1, ""),
    ("idle_pss_mb", "idle PSS of the process tree after 5 s (MB)", 1, ""),
    ("idle_rss_mb", "idle RSS of the sidecar process after 5 s (MB)", 1, ""),
    ("idle_rssanon_mb", "… of which anonymous (heap) (MB)", 1, ""),
    ("idle_rssfile_mb", "… of which file-backed (code, .so) (MB)", 1, ""),
    ("requests_per_msg", "SQS requests per message", 3, ""),
    ("duplicates", "duplicate deliveries", 0, ""),
    ("latency_p50_ms", "send→POST p50 (ms)", 1, ""),
    ("latency_p99_ms", "send→POST p99 (ms)", 1, ""),
    ("idle_receives_per_receiver_min", "idle receives / receiver / min", 1, ""),
    ("loadavg_start", "load average at start", 2, ""),
)


def config_table(entry: dict[str, Any]) -> list[str]:
    runs = entry["runs"]
    head = "| figure | median | " + " | ".join(f"run {i + 1}" for i in range(len(runs))) + " |"
    lines = [head, "|---" * (len(runs) + 2) + "|"]
    for key, label, digits, _ in ROWS:
        if all(r.get(key) is None for r in runs):
            continue
        cells = [
            fmt(r.get(key), digits) if isinstance(r.get(key), int | float) else "n/a" for r in runs
        ]
        lines.append(f"| {label} | {fmt(med(runs, key), digits)} | " + " | ".join(cells) + " |")
    actions: dict[str, list[float]] = {}
    for r in runs:
        for action, per in (r.get("requests_per_msg_by_action") or {}).items():
            actions.setdefault(action, []).append(per)
    for action, values in sorted(actions.items()):
        lines.append(
            f"| {action} per message | {statistics.median(values):.4f} | "
            + " | ".join(f"{v:.4f}" for v in values)
            + " |"
        )
    return lines


def profile_section(prof: dict[str, Any] | None) -> list[str]:
    if not prof or not prof.get("summary"):
        return []
    summary, run = prof["summary"], prof["run"]
    samples = dict(summary.get("samples", []))
    out = [
        f"## Profile (py-spy, `{prof.get('config', 'b10-r1-w10')}`)",
        "",
        f"An extra run under `py-spy record -r 100 -f raw` (not in the medians above: sampling pauses "
        f"the process): {fmt(run.get('msg_per_s'))} msg/s, {fmt(run.get('cpu_ms_per_1000'))} ms CPU per "
        f"1 000 messages, {fmt(samples.get('busy'))} busy samples. Summarise again with "
        f"`python -m bench.profile {prof['file']}`.",
        "",
        "py-spy samples wall-clock time of a thread that is not asleep: on these 2 shared cores a",
        "`write()` to a loopback socket wakes the peer (fauxqs or the receiver), which often takes the",
        'core at once, so the sidecar is counted "in" `_writelines` while it merely waits for a core;',
        "the kernel's real share of the sidecar's CPU is the stime line in the tables above. The",
        "last column therefore spreads the Python-level work only.",
        "",
        "| where the busy samples are | % of samples | % of Python-level work |",
        "|---|---|---|",
    ]
    buckets = summary.get("buckets", [])
    python_work = sum(v for n, v in buckets if not n.startswith(("socket writes", "event loop")))
    for name, share in buckets:
        own = (
            ""
            if name.startswith(("socket writes", "event loop"))
            else f"{100 * share / python_work:.1f}"
        )
        out.append(f"| {name} | {share:.1f} | {own} |")
    out += ["", "| top functions by own time | % |", "|---|---|"]
    out += [f"| `{name}` | {share:.1f} |" for name, share in summary.get("self", [])[:12]]
    out += ["", "| top functions by inclusive time (below the event loop) | % |", "|---|---|"]
    skip = ("<module>", "Runner.run", "run (uvloop", "_run_loop", "main (")
    rows = [(n, v) for n, v in summary.get("inclusive", []) if not n.startswith(skip)]
    out += [f"| `{name}` | {share:.1f} |" for name, share in rows[:12]]
    return [*out, ""]


def _bound_note(rate: float | None, share: float | None, unit: str) -> str:
    """Whether a ceiling probe saturated the server or only its own Python client."""
    if not rate or not share:
        return ""
    if share >= SERVER_BOUND_SHARE:
        return "The server was saturated: this is its ceiling here."
    return (
        f"The one-process Python client was the limit, not the server: the server's own ceiling is "
        f"higher (linear extrapolation to one core: ~{fmt(rate / share)} {unit}). No sidecar run came near it."
    )


def render(result: dict[str, Any], keep: str) -> str:
    m = result["machine"]
    sc, wc = result.get("server_ceiling", {}), result.get("webhook_ceiling", {})
    server = result["server"]
    out = [
        "# Benchmarks",
        "",
        f"Generated by the harness (`bench/`) on {result['started']} (finished {result.get('finished', '?')}).",
        f"Exact command: `{result['command']}` (`make bench` runs `python -m bench.run`).",
        f"Sidecar under test: `{result['sidecar']}`. SQS server: {server['kind']} {server['version']} on 127.0.0.1.",
        f"{result['messages']} messages per run ({result['runs_per_config']} run(s) per configuration; figures are medians).",
        "",
        "## Machine",
        "",
        f"- CPU: {m['cpu']}, {m['cores']} cores; {m.get('memory_gb')} GB RAM; kernel {m['kernel']}",
        f"- Python {m['python']}, Node {m.get('node')}",
        f"- Load average (1 min) at start {fmt(m['loadavg'][0], 2)}, at end {fmt(m.get('loadavg_end', [None])[0], 2)}"
        + (
            ": other work shared these 2 cores while this ran."
            if max(m["loadavg"][0], (m.get("loadavg_end") or [0])[0]) >= 1
            else " (the machine was otherwise quiet)."
        ),
        "",
        "## Against the targets",
        "",
        "| target | goal | measured (median) | result |",
        "|---|---|---|---|",
    ]
    out += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in targets(result)]
    out += ["", *[f"- {n}" for n in result.get("notes", [])], ""]
    out += [
        "## The servers' own ceilings",
        "",
        f"- SQS server ({server['kind']}): plain aiobotocore, {sc.get('consumers')} concurrent receive(10)+DeleteMessageBatch "
        f"loops, no sidecar, no webhook: **{fmt(sc.get('msg_per_s'))} msg/s** with the server at "
        f"{fmt(100 * (sc.get('server_cpu_share') or 0))} % of a core ({sc.get('messages')} messages). "
        + _bound_note(sc.get("msg_per_s"), sc.get("server_cpu_share"), "msg/s"),
        f"- Webhook receiver: {wc.get('connections')} raw keep-alive clients: **{fmt(wc.get('req_per_s'))} POST/s** with the "
        f"receiver at {fmt(100 * (wc.get('receiver_cpu_share') or 0))} % of a core. "
        + _bound_note(wc.get("req_per_s"), wc.get("receiver_cpu_share"), "POST/s"),
        "",
    ]
    reference = result.get("reference", {})
    for key, entry in result.get("configs", {}).items():
        out += [f"## {entry['label']} (`{key}`)", "", *config_table(entry), ""]
        same_run = reference.get("configs", {}).get(key)
        if same_run:
            out += [
                f"Reference binary, same servers, each run right after the sidecar's: "
                f"`{reference['command']}`",
                "",
                *config_table(same_run),
                "",
            ]
    out += profile_section(result.get("profile"))
    out += [METHOD, "", keep.rstrip("\n"), ""]
    return "\n".join(out)


METHOD = """## How it is measured

- **SQS server**: fauxqs 1.x (npm, Node 20), started by `bench/fauxqs_loopback.mjs`, which forces
  every `listen()` onto 127.0.0.1 (fauxqs itself binds 0.0.0.0) and counts requests inside the
  server by `X-Amz-Target` action (and empty ReceiveMessage answers). That costs a few map
  increments per request instead of a proxy hop, and counts any sidecar the same way (the Go
  Carrier too). The harness's own calls carry `carrier-bench-harness` in their User-Agent and are
  counted apart. Without node/npm the harness falls back to moto with 200 messages (moto costs
  O(queue depth) per call) and says so. The sidecar's own `carrier_sqs_requests_total` is scraped
  too and kept in the raw JSON as a cross-check.
- **Webhook receiver** (`bench/webhook.py`): a bare `asyncio.Protocol` on uvloop in its own
  process: HTTP/1.1 keep-alive, parses the request line, Content-Length and the JSON body
  (`{"id": n, "sent": t}`), answers `200` with no body. Chosen over aiohttp (several times the
  per-request CPU) and nginx (cannot count ids or delay selected replies without a module). Its
  ceiling is measured above; during the runs it used a few % of a core.
- **Runs**: a fresh queue per run, preloaded by 8 concurrent SendMessageBatch tasks with unique
  ids; then the sidecar starts (start-up is excluded from the steady-state figures, included in
  the whole-process ones). The measured window runs from the first POST to the moment the queue reports
  0 messages (visible + in flight + delayed) after every id arrived, i.e. deletes included.
  Throughput = messages / (last POST - first POST).
- **CPU**: `/proc/<pid>/stat` utime+stime+cutime+cstime of the sidecar (and any live
  descendants), sampled every 20 ms and interpolated at the window's ends; per 1 000 messages.
  Two figures: **steady state** (first POST → drained) and **whole process** (the tree's total
  CPU from exec to drained, start-up included: what an outside harness that times a process
  sees).
- **Start-up**: exec → the sidecar's `"receiving"` log line, which it writes as its receive
  loops are scheduled (the first ReceiveMessage is the next thing the event loop runs); the log
  file is polled every 5 ms, CPU is the tree's CPU interpolated at that moment.
- **Memory**: the process tree's PSS (the sidecar and its probe port's process, forked from it:
  shared pages counted once), sampled; peak = max of the samples and the sidecar's VmHWM
  (start-up included); idle = after 5 s on the drained queue, the tree's PSS and the sidecar
  process's own VmRSS, the latter split into anonymous and file-backed pages.
- **SQS cost**: requests per message counted at the server for the whole run (GetQueueUrl and
  GetQueueAttributes at start-up included). Idle cost: ReceiveMessage calls counted over 60 s
  (`--quick`: 20 s, extrapolated to a minute) on the drained queue, per receiver.
- **Latency**: after the idle phase, 50 messages (`--quick`: 15) sent one at a time, each
  0.05 to 0.2 s after the previous was delivered (so the receivers sit in their long poll); the
  receiver computes `now - sent` (same host clock).
- **Mixed-latency webhook**: every 20th id (5 %) is answered after 500 ms, the rest at once;
  N/4 messages (the slow replies dominate its duration).
- Another sidecar runs through the same harness with `--sidecar-cmd "..."` and the same
  `CARRIER_*` environment plus `AWS_ACCESS_KEY_ID/SECRET/REGION` (the Go Carrier needs
  `CARRIER_SQS_ENDPOINT` and `CARRIER_SQS_QUEUE_NAME`, both set). `--sidecar-cmd standin` runs
  `bench/standin.py`, the floor: the Go Carrier's loop (it waits for its whole batch) on the
  same clients with the sidecar's client options and nothing else, what the sidecar cannot
  undercut; also a reference for head-of-line behaviour.
- **Reference binary**: `--reference-cmd "..."` (e.g. the Go Carrier) runs right after each
  sidecar run of the two CPU-target configurations, on the same servers and webhook; the targets
  are then judged against its medians from the same run. Without it they are compared with
  issue 15's figures (other days, other servers) and marked "not a verdict".
- **A/B pairs**: `python -m bench.ab --a "CMD" --b "CMD" [--env-a K=V] [--env-b K=V] [--busy-b N]`
  runs two commands alternately (AB, BA, ...) on the same servers and prints each pair's B/A
  ratio, the load average and the spread: on shared cores a change is judged by pairs, never by
  figures from different hours. `python -m bench.sweep` draws the curves in `docs/img/`.
- Raw figures of every run: `bench/results/<time>.json` (not committed); sidecar logs beside them."""


DEFAULT_KEEP = """<!-- keep:start -->
<!-- keep:end -->"""


def write(result: dict[str, Any], path: Path) -> None:
    keep = DEFAULT_KEEP
    if path.exists():
        found = KEEP.search(path.read_text())
        if found:
            keep = found.group(0)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(result, keep))
