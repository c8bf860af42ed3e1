"""Turn the benchmark's results into docs/benchmarks.md and its plot, with each target marked
met or missed. Pure rendering: everything shown comes from the results file."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["TWO_WORKERS", "plot", "render", "settled_growth", "targets"]

#: The server entry of the deploy layout (one-thread processes, scaled out).
TWO_WORKERS = "ours, 2 x 1 thread"

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
  context), then a third ladder mixes 8 to 128 tokens.
- **Ours**: `helpdesk-scorer serve` on the released int8 model, default settings except
  `HELPDESK_THREADS`; then the deploy layout, two such servers with one thread each on one
  port (`evaluation.bench.replicas`, SO_REUSEPORT: the stand-in for two one-CPU replicas behind
  a Service; memory and CPU summed over both). The timing split (queue wait per request;
  tokenize and inference per batch; mean batch size) is the difference of two `/metrics`
  snapshots around the step (for the two servers, of the one that answered the scrape).
- **Pipeline baseline** (`evaluation/bench/pipeline_server.py`): what a user would otherwise
  write: FastAPI + a transformers `feature-extraction` pipeline (fp32 torch, mean pooling, a
  linear head and temperatures), a sync endpoint, default uvicorn, one worker, the same thread
  count. With `--run` it carries that run's fine-tuned weights; without one (a fresh clone),
  the shipped all-MiniLM-L6-v2 encoder package and a seeded head of the same shape: the same
  tensors' shapes, so the same cost, but not the same scores. "Torch model" below says which.
- **Memory**: VmRSS of the server process at idle, its peak sampled every 0.25 s under each
  step, and over the soak; server CPU ms per request is user+system time of the server process
  over the step divided by the requests sent.
- Profiling notes and what was tried: [benchmark-profiling.md](benchmark-profiling.md).
"""

Result = dict[str, Any]


def settled_growth(samples: list[float]) -> float | None:
    """RSS growth (MB) from a quarter into the soak to its end: the first requests grow
    onnxruntime's buffers to the largest batch shapes once, which is warm-up, not a leak."""
    if len(samples) < 4:
        return None
    return round(samples[-1] - samples[len(samples) // 4], 1)


def _step_at(steps: Sequence[Result], rate: float) -> Result | None:
    return next((s for s in steps if s["offered_rps"] == rate), None)


def _sustained(steps: Sequence[Result]) -> float | None:
    """Highest offered rate of a step with zero errors whose answers kept up with it (>= 99%:
    the achieved rate counts answers inside the measured window, so it reads a little low)."""
    ok = [
        s["offered_rps"]
        for s in steps
        if not s["errors"] and s["achieved_rps"] >= 0.99 * s["offered_rps"]
    ]
    return max(ok) if ok else None


def _model_p50(results: Result, name: str, tokens: int) -> float | None:
    rows = results.get("model", {}).get("rows", [])
    return next(
        (
            r["p50_ms"]
            for r in rows
            if r["model"] == name and r["batch"] == 1 and r["tokens"] == tokens
        ),
        None,
    )


def targets(results: Result) -> list[tuple[str, str, bool | None]]:
    """(target, measured, met) for each target of DESIGN.md and the issue; None: not measured."""
    servers = results.get("servers", {})
    ours = servers.get("ours", {})
    steps = ours.get("steps", [])
    at50 = _step_at(steps, 50)
    at200 = _step_at(steps, 200)
    best = ours.get("best_rate_p99_50ms")
    baseline = servers.get("pipeline", {}).get("best_rate_p99_50ms")
    sustained = _sustained(steps)
    int8 = _model_p50(results, "onnx int8", 64)
    soak = results.get("soak", {})
    ladders = [*steps, *ours.get("long", []), *ours.get("varied", [])]
    peaks = [s.get("rss_peak_mb", 0) for s in ladders]
    peak = max([*peaks, soak.get("rss_peak_mb", 0)], default=None)
    rows: list[tuple[str, str, bool | None]] = [
        (
            "model alone, int8, 64 tokens, batch 1: p50 <= 4 ms",
            f"{int8} ms" if int8 is not None else "not measured",
            None if int8 is None else int8 <= 4,
        ),
    ]
    if at50 is not None:
        lat = at50["latency_ms"]
        rows.append(
            (
                "HTTP at a fixed 50 req/s: p50 <= 10 ms and p99 <= 30 ms",
                f"p50 {lat.get('p50')} ms, p99 {lat.get('p99')} ms, {at50['errors']} errors",
                not at50["errors"] and lat.get("p50", 1e9) <= 10 and lat.get("p99", 1e9) <= 30,
            )
        )
    else:
        rows.append(
            ("HTTP at a fixed 50 req/s: p50 <= 10 ms and p99 <= 30 ms", "not measured", None)
        )
    rows.append(
        (
            "sustained >= 150 messages/s with zero errors (issue)",
            f"{sustained} msg/s" if sustained is not None else "no error-free step",
            None if not steps else (sustained or 0) >= 150,
        )
    )
    if at200 is not None:
        lat = at200["latency_ms"]
        rows.append(
            (
                "200 single-message req/s with p99 <= 50 ms, zero errors (DESIGN.md)",
                f"p99 {lat.get('p99')} ms, {at200['errors']} errors, "
                f"achieved {at200['achieved_rps']}/s",
                not at200["errors"] and lat.get("p99", 1e9) <= 50,
            )
        )
    else:
        rows.append(
            (
                "200 single-message req/s with p99 <= 50 ms, zero errors (DESIGN.md)",
                "ladder stopped before 200/s" if steps else "not measured",
                False if steps else None,
            )
        )
    rows.append(
        (
            ">= 250 single-message req/s (64 tokens) with p99 <= 50 ms, zero errors",
            f"{best}/s" if best is not None else "no step met p99 < 50 ms",
            None if not steps else (best or 0) >= 250,
        )
    )
    rows.append(
        (
            ">= 5x the pipeline server's rate at the same p99 (< 50 ms, zero errors)",
            f"ours {best}/s vs pipeline {baseline}/s"
            + (f" = {best / baseline:.1f}x" if best and baseline else ""),
            None if baseline is None or not steps else (best or 0) >= 5 * baseline,
        )
    )
    layout = servers.get(TWO_WORKERS, {})
    if layout.get("steps"):
        spread = layout.get("best_rate_p99_50ms")
        rows.append(
            (
                "deploy layout (two 1-thread processes): >= 250 req/s and >= 5x the pipeline, "
                "p99 <= 50 ms, zero errors",
                f"{spread}/s"
                + (f" = {spread / baseline:.1f}x the pipeline" if spread and baseline else ""),
                (spread or 0) >= 250 and (baseline is None or (spread or 0) >= 5 * baseline),
            )
        )
    long_best = ours.get("best_rate_p99_50ms_128")
    long_baseline = servers.get("pipeline", {}).get("best_rate_p99_50ms_128")
    if ours.get("long"):
        rows.append(
            (
                "128-token messages (measured, no target): best rate at p99 < 50 ms",
                f"ours {long_best}/s vs pipeline {long_baseline}/s",
                None,
            )
        )
    rows.append(
        (
            "<= 400 MB resident per worker (idle, under load, soak)",
            f"idle {ours.get('idle_rss_mb')} MB, peak {peak} MB",
            None if peak is None else peak <= 400,
        )
    )
    growth = soak.get("rss_growth_mb")
    settled = settled_growth(soak.get("rss_samples_mb", []))
    rows.append(
        (
            "no memory growth over the soak (<= 10 MB after its first quarter)",
            f"{settled:+} MB over the last three quarters ({growth:+} MB from the start, "
            f"the first requests sizing onnxruntime's buffers), {soak.get('fd_growth')} fds"
            if growth is not None and settled is not None
            else "not measured",
            None if settled is None else settled <= 10,
        )
    )
    return rows


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
            f"{server.get('best_rate_p99_50ms_128')}/s at 128 tokens.",
            "",
            *_server_table("64 tokens", server["steps"]),
            "",
            *_server_table("128 tokens", server.get("long", [])),
            "",
            *_server_table("8-128 tokens", server["varied"]),
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
