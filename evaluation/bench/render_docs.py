"""Turn the benchmark's results into docs/benchmarks.md and its plot, with each target marked
met or missed. Pure rendering: everything shown comes from the results file."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from evaluation.bench.targets import TWO_WORKERS, Result, targets

__all__ = ["plot", "render"]

METHOD = """## Method

- **Load generator** (`evaluation/bench/load.py`): open loop. Each request has a scheduled send
  time (constant arrivals at the offered rate) and its latency runs from that time to the last
  byte of the answer, so a server that falls behind shows it in the tail (no coordinated
  omission). Raw asyncio streams with keep-alive connections (up to 256 open), a 10 s timeout,
  and every status (or timeout, or connection error) counted. It runs in its own process; its
  own floor is measured against the no-op `/healthz` route below.
- **Ladder**: each rate runs a short warm-up, then the measured seconds; a ladder stops after a
  step with errors or p99 over 1 s. "Best rate" is the highest offered rate with p99 < 50 ms
  and zero errors. Requests carry one message of about 64 tokens (varied helpdesk sentences),
  then one of about 128 tokens (the released model's `max_length`: the cost of the longer
  context), then a third ladder mixes 8 to 128 tokens, and a fourth sends the 64-token message
  with a 3-turn history (customer, agent, customer), which a thread-reading model reads as up
  to `context_length` more tokens.
- **Ours**: `helpdesk-scorer serve` on the released int8 model, default settings except
  `HELPDESK_THREADS`; then the deploy layout, two such servers with one thread each on one
  port (`evaluation.bench.replicas`, SO_REUSEPORT: the stand-in for two one-CPU replicas behind
  a Service; memory and CPU summed over both). The timing split (queue wait per request;
  tokenize and inference per batch; mean batch size) is the difference of two `/metrics`
  snapshots around the step (for the two servers, of the one that answered the scrape).
- **Pipeline baseline** (`evaluation/bench/pipeline_server.py`): what a user would otherwise
  write: FastAPI + a transformers `feature-extraction` pipeline (fp32 torch, mean pooling, a
  linear head and temperatures), a sync endpoint, default uvicorn, one worker, the same thread
  count, reading the same tokens (the same `max_length`, and for a thread-reading model the
  history after a [SEP], cut at `max_length` + `context_length`). With `--run` it carries that
  run's fine-tuned weights; without one (a fresh clone),
  the shipped all-MiniLM-L6-v2 encoder package and a seeded head of the same shape: the same
  tensors' shapes, so the same cost, but not the same scores. "Torch model" below says which.
- **Memory**: VmRSS of the server process at idle, its peak sampled every 0.25 s under each
  step, and over the soak; server CPU ms per request is user+system time of the server process
  over the step divided by the requests sent.
- Profiling notes and what was tried: [benchmark-profiling.md](benchmark-profiling.md).
"""


def plot(results: Result, path: Path) -> None:
    """Latency percentiles and achieved rate against offered rate for each server, and the
    model-level p50 per backend beside the FLOP floor."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (latency, rate, model) = plt.subplots(1, 3, figsize=(16, 4.8))
    colours = {"ours": "tab:blue", TWO_WORKERS: "tab:green", "pipeline": "tab:red"}
    for name, server in results.get("servers", {}).items():
        steps = server["steps"]
        offered = [s["offered_rps"] for s in steps]
        for key, style in (("p50", ":"), ("p99", "-")):
            values = [s["latency_ms"].get(key, float("nan")) for s in steps]
            latency.plot(
                offered, values, style, marker="o", color=colours.get(name), label=f"{name} {key}"
            )
        rate.plot(
            offered,
            [s["achieved_rps"] for s in steps],
            marker="o",
            color=colours.get(name),
            label=name,
        )
    latency.axhline(50, color="grey", lw=0.8, ls="--", label="50 ms")
    latency.set(
        xlabel="offered requests/s",
        ylabel="latency from scheduled send (ms)",
        yscale="log",
        title="Latency vs offered rate (64-token messages)",
    )
    latency.legend(fontsize=8)
    top = max(
        (s["offered_rps"] for v in results.get("servers", {}).values() for s in v["steps"]),
        default=1,
    )
    rate.plot([0, top], [0, top], color="grey", lw=0.8, ls="--", label="offered")
    rate.set(xlabel="offered requests/s", ylabel="answered with 200, per s", title="Throughput")
    rate.legend(fontsize=8)
    rows = [r for r in results.get("model", {}).get("rows", []) if r["batch"] == 1]
    names = list(dict.fromkeys(r["model"] for r in rows))
    lengths = sorted({r["tokens"] for r in rows})
    width = 0.8 / (len(names) + 1)
    for i, name in enumerate(names):
        values = [
            next((r["p50_ms"] for r in rows if r["model"] == name and r["tokens"] == t), 0)
            for t in lengths
        ]
        model.bar([j + i * width for j in range(len(lengths))], values, width, label=name)
    floors = [next(r["floor_ms"] for r in rows if r["tokens"] == t) for t in lengths]
    model.bar(
        [j + len(names) * width for j in range(len(lengths))],
        floors,
        width,
        label="FLOP floor",
        color="grey",
    )
    model.set_xticks(
        [j + width * len(names) / 2 for j in range(len(lengths))], [f"{t} tokens" for t in lengths]
    )
    model.set(ylabel="p50 ms, batch 1", yscale="log", title="Model alone")
    model.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _server_table(name: str, steps: Sequence[Result]) -> list[str]:
    lines = [
        f"| {name}: offered/s | achieved/s | p50 | p95 | p99 | max (ms) | statuses | peak RSS MB "
        "| server CPU ms/req | queue | tokenize | inference (ms) | mean batch |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for s in steps:
        lat = s["latency_ms"]
        statuses = ", ".join(f"{k}: {v}" for k, v in s["statuses"].items())
        lines.append(
            f"| {s['offered_rps']:g} | {s['achieved_rps']} | {lat.get('p50', '-')} "
            f"| {lat.get('p95', '-')} | {lat.get('p99', '-')} | {lat.get('max', '-')} "
            f"| {statuses} | {s.get('rss_peak_mb')} | {s.get('server_cpu_ms_per_request', '-')} "
            f"| {s.get('queue_ms', '-')} | {s.get('tokenize_ms', '-')} "
            f"| {s.get('inference_ms', '-')} | {s.get('mean_batch', '-')} |"
        )
    return lines


def _cpu_comparison(servers: dict[str, Result]) -> list[str]:
    """Server CPU per request at the highest rate both servers ran without errors: the figure
    that other load on the machine moves least."""
    if not {"ours", "pipeline"} <= set(servers):
        return []
    clean = [
        {s["offered_rps"]: s for s in servers[n]["steps"] if not s["errors"]}
        for n in ("ours", "pipeline")
    ]
    common = sorted(set(clean[0]) & set(clean[1]))
    if not common:
        return []
    rate = common[-1]
    ours, baseline = (c[rate].get("server_cpu_ms_per_request") for c in clean)
    if not ours or not baseline:
        return []
    return [
        f"Server CPU per request at {rate:g} req/s (64 tokens, both error-free): ours {ours} ms, "
        f"pipeline {baseline} ms, {baseline / ours:.1f}x less for ours."
    ]


def _loads(values: Sequence[float]) -> str:
    return ", ".join(f"{v:.2f}" for v in values) or "-"


def render(results: Result, docs: Path) -> None:
    """Write `docs` (markdown) and the plot beside it (same name, .png)."""
    docs.parent.mkdir(parents=True, exist_ok=True)
    image = docs.with_suffix(".png")
    plot(results, image)
    m = results["machine"]
    versions = ", ".join(f"{k} {v}" for k, v in m["versions"].items())
    out = [
        "# Benchmarks",
        "",
        "Generated by `python -m evaluation.bench` from `results.json`; do not edit by hand.",
        "",
        f"- Run: {results['date']}, {results.get('duration_s')} s"
        + (
            " (**smoke run: plumbing check only, numbers meaningless**)"
            if results.get("smoke")
            else ""
        ),
        f"- Command: `{results['command']}`",
        f"- Machine: {m['cpu']}, {m['cpus']} CPUs, {m['memory_gb']} GB; {versions}",
        f"- Load average (1, 5, 15 min) before: {_loads(m['load_average_before'])}, after: "
        f"{_loads(m.get('load_average_after', []))}. Before: well above 0 means other work "
        "was running (or just ended: it decays over minutes); after: includes this run's own "
        "servers and load generator.",
        *(
            [
                "",
                f"**The 1-minute load average was {busiest:.1f} on {m['cpus']} CPUs when the run "
                "started: other work was sharing the cores, so latencies and rates here "
                "understate the server; rerun on an idle machine before quoting them.** Server "
                "CPU ms per request and memory are the figures least moved by that.",
            ]
            if (busiest := m["load_average_before"][0]) > 0.5 * m["cpus"]
            else []
        ),
        "",
        f"![latency and throughput]({image.name})",
        "",
        METHOD,
        "## Targets",
        "",
        "| target | measured | met |",
        "|---|---|---|",
    ]
    for target, measured, met in targets(results):
        out.append(
            f"| {target} | {measured} | {'-' if met is None else 'yes' if met else '**no**'} |"
        )
    model = results.get("model", {})
    out += [
        "",
        "## Model alone",
        "",
        f"Inputs tokenized beforehand; {model.get('threads')} threads; fp32 matmul peak "
        f"{model.get('peak_gflops')} GFLOP/s; the floor is FLOPs per batch over that peak. "
        f"Torch model: {model.get('torch_model') or 'not measured'}.",
        "",
        "| model | batch | tokens | p50 ms | p99 ms | messages/s | floor ms |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in model.get("rows", []):
        out.append(
            f"| {r['model']} | {r['batch']} | {r['tokens']} | {r['p50_ms']} | {r['p99_ms']} "
            f"| {r['messages_per_s']} | {r['floor_ms']} |"
        )
    out += ["", "## Load generator floor (no-op route `/healthz` of our server)", ""]
    for s in results.get("generator_floor", []):
        lat = s["latency_ms"]
        out.append(
            f"- {s['offered_rps']:g}/s offered, {s['achieved_rps']}/s achieved: "
            f"p50 {lat.get('p50')} ms, p99 {lat.get('p99')} ms, "
            f"max send lag {s['max_send_lag_ms']} ms"
        )
    out += ["", "## Servers", "", *_cpu_comparison(results.get("servers", {})), ""]
    for name, server in results.get("servers", {}).items():
        out += [
            f"### {name}",
            "",
            f"Idle RSS {server['idle_rss_mb']} MB; highest rate with p99 < 50 ms and zero errors: "
            f"{server['best_rate_p99_50ms']}/s at 64 tokens, "
            f"{server.get('best_rate_p99_50ms_128')}/s at 128 tokens, "
            f"{server.get('best_rate_p99_50ms_history')}/s at 64 tokens with a 3-turn history.",
            "",
            *_server_table("64 tokens", server["steps"]),
            "",
            *_server_table("128 tokens", server.get("long", [])),
            "",
            *_server_table("8-128 tokens", server["varied"]),
            "",
            *_server_table("64 tokens, 3-turn history", server.get("history", [])),
            "",
        ]
    soak = results.get("soak", {})
    if soak:
        out += [
            "## Soak",
            "",
            "Our server, varied requests: 1-16 messages of 1-400 words, 0-2 history turns.",
            "",
            f"{soak['seconds']:g} s at {soak['rate_per_second']:g} req/s: "
            f"statuses {soak['statuses']}, latency {soak['latency_ms']}; "
            f"RSS {soak['before']['rss_mb']} -> {soak['after']['rss_mb']} MB "
            f"(peak {soak['rss_peak_mb']}), open fds {soak['before']['open_fds']} -> "
            f"{soak['after']['open_fds']}. RSS every tenth of the soak: "
            + ", ".join(
                str(v)
                for v in soak.get("rss_samples_mb", [])[
                    :: max(1, len(soak.get("rss_samples_mb", [])) // 10)
                ]
            )
            + " MB.",
            "",
        ]
    docs.write_text("\n".join(out) + "\n")
