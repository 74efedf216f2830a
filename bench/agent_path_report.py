"""The summary table and files of bench/agent_path.py (bench/results/agent_path.json, .md):
ours against bare, with issue 11's targets (the comparators' section:
bench/agent_path_comparator_report.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.result_files import save_results

RESULT_NAME = "agent_path"
S3_IDEAL = 256 / 0.2  # connections / model latency: req/s with no overhead at all

# Issue 11's targets, as (scenario, measure) -> what the "us" figure must satisfy.
TARGETS = {
    ("S1", "us_hit"): "ratio >= 50%",
    ("S2", "tokens/s"): "ratio >= 50%",
    ("S2", "TTFT p99 ms"): "<= bare + 10%",
    ("S3", "% of ideal"): ">= 95%",
    ("S4", "lateness p99 ms"): "< 20 ms",
    ("S4", "RSS KiB / open stream"): "< 40 KB",
}


def _row(
    scenario: str, measure: str, bare: float, us: float, cpu: tuple[float, float], unit: str
) -> dict[str, Any]:
    return {
        "scenario": scenario,
        "measure": measure,
        "bare": bare,
        "us": us,
        "ratio": round(us / bare, 4) if bare else None,
        "cpu_bare": cpu[0],
        "cpu_us": cpu[1],
        "cpu_unit": unit,
        "target": TARGETS.get((scenario, measure.split(": ")[-1]), ""),
    }


def summary_table(result: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per figure of the issue's table: bare, us, us/bare, and server CPU of each."""
    rows: list[dict[str, Any]] = []
    scenarios = result["scenarios"]
    if "S1" in scenarios:
        med = scenarios["S1"]["medians"]
        bare = med["bare"]
        for key in ("us_hit", "us_hit_pooled", "us_bypass", "us_session"):
            label = scenarios["S1"]["rows"][key]["label"]
            cpu = (bare["server_cpu_us_per_request"], med[key]["server_cpu_us_per_request"])
            rows.append(
                _row(
                    "S1",
                    f"req/s, {label}: {key}",
                    bare["requests_per_s"],
                    med[key]["requests_per_s"],
                    cpu,
                    "us/request",
                )
            )
    if "S2" in scenarios:
        bare, us = scenarios["S2"]["medians"]["bare"], scenarios["S2"]["medians"]["us_hit"]
        cpu = (bare["server_cpu_us_per_event"], us["server_cpu_us_per_event"])
        for measure, key in (
            ("tokens/s", "tokens_per_s"),
            ("TTFT p50 ms", "ttft_p50_ms"),
            ("TTFT p99 ms", "ttft_p99_ms"),
        ):
            rows.append(_row("S2", measure, bare[key], us[key], cpu, "us/token event"))
    if "S3" in scenarios:
        med = scenarios["S3"]["medians"]
        bare = med["bare"]
        for key, measure in (
            ("us_bypass", "% of ideal"),
            ("us_bypass_pooled", "% of ideal, REDIS_MULTIPLEX=false"),
        ):
            us = med[key]
            cpu = (bare["server_cpu_us_per_request"], us["server_cpu_us_per_request"])
            share = (
                round(bare["requests_per_s"] / S3_IDEAL * 100, 1),
                round(us["requests_per_s"] / S3_IDEAL * 100, 1),
            )
            rows.append(_row("S3", measure, *share, cpu, "us/request"))
    if "S4" in scenarios:
        bare, us = scenarios["S4"]["medians"]["bare"], scenarios["S4"]["medians"]["us_bypass"]
        cpu = (bare["server_cpu_us_per_event"], us["server_cpu_us_per_event"])
        for measure, key in (
            ("lateness p50 ms", "lateness_p50_ms"),
            ("lateness p99 ms", "lateness_p99_ms"),
            ("lateness vs pacing schedule p99 ms", "schedule_lateness_p99_ms"),
            ("RSS KiB / open stream", "rss_per_stream_kib"),
            ("RSS KiB / stream at peak", "rss_peak_per_stream_kib"),
            ("server CPU us / stream opened", "server_cpu_us_per_stream_opened"),
        ):
            rows.append(_row("S4", measure, bare[key], us[key], cpu, "us/event"))
    return rows


def _fmt(value: float | None) -> str:
    if value is None:
        return ""
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.1f}"


_RATES = ("req/s", "tokens/s", "% of ideal")  # higher is better: us as a share of bare


def render_table(rows: list[dict[str, Any]]) -> str:
    head = (
        "| scenario | measure | bare | us | us vs bare | server CPU bare | server CPU us "
        "| CPU us / bare | target |"
    )
    lines = [head, "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        measure = r["measure"].split(": ")[0]
        ratio = ""
        if r["ratio"] is not None:
            ratio = f"{r['ratio']:.1%}" if measure.startswith(_RATES) else f"{r['ratio']:.1f}x"
        cpu_ratio = f"{r['cpu_us'] / r['cpu_bare']:.1f}x" if r["cpu_bare"] else ""
        lines.append(
            f"| {r['scenario']} | {measure} | {_fmt(r['bare'])} | {_fmt(r['us'])} | {ratio} | "
            f"{r['cpu_bare']:.1f} {r['cpu_unit']} | {r['cpu_us']:.1f} {r['cpu_unit']} | "
            f"{cpu_ratio} | {r['target']} |"
        )
    return "\n".join(lines)


def _notes(result: dict[str, Any]) -> list[str]:
    machine, pin, cfg = result["machine"], result["pinning"], result["config"]
    dirty = " + uncommitted changes in app/" if result["git"]["app_dirty"] else ""
    busy = [
        f"{name} {row} {s['machine_busy_cores']}"
        for name, scenario in result["scenarios"].items()
        for row, samples in scenario["samples"].items()
        for s in samples[:1]
        if "machine_busy_cores" in s
    ]
    notes = [
        "Read the server CPU columns first: server CPU time (user + system, /proc) per request "
        "or per token event under load. Rates move with whatever else runs on the machine; "
        "CPU per unit of work much less.",
        "Us: `agent-service serve`, one uvicorn worker, JWT, Redis rate limit (limit out of "
        "reach), run cap on (out of reach), metrics, JSON access log at INFO to a file, run "
        "log on, private redis-server; offline model, 64 tokens, no latency or pacing unless "
        "the scenario says. Bare: bench/bare_app.py (FastAPI, no middleware): the same frames "
        "and about the same bytes (per row in agent_path.json `checks`).",
        '`"store": false` everywhere but the session row; cache hit = the same request '
        "repeated; bypassed = `Cache-Control: no-cache`.",
    ]
    if (s4 := result["scenarios"].get("S4")) is not None:
        m, model = s4["medians"], s4["model"]
        notes.append(
            f"S4: first token after {model['latency_ms']} ms on every server, then "
            f"{model['tokens']} tokens at {model['tokens_per_second']:g}/s; every stream open "
            f"after {m['bare']['all_open_after_s']} s (bare) / {m['us_bypass']['all_open_after_s']}"
            f" s (us); lateness over the {m['bare']['all_open_window_s']} s / "
            f"{m['us_bypass']['all_open_window_s']} s of tokens flowing to every open stream; "
            "CPU per event over the token phase only; RSS from the first wave."
        )
    notes += [
        f"Pinning ({pin['method']}): server on CPU {pin['server_cpu']}, load generator and "
        f"redis-server on CPU {pin['client_and_redis_cpu']}. Load: one asyncio process, raw "
        "sockets (bench/agent_path_load.py).",
        f"{cfg['seconds']} s per measurement after {cfg['warmup_seconds']} s of warm-up, "
        f"{cfg['rounds']} rounds alternating rows, medians; S4: {cfg['s4_streams']} streams, "
        f"{cfg['s4_rounds']} round(s).",
        f"Machine: {machine['cpu_count']} CPUs ({machine['cpu_model']}), Python "
        f"{machine['python']}, load average at start {machine['loadavg_at_start'][0]:.2f}; "
        f"whole-machine busy cores, first round of each row: {', '.join(busy)}.",
        f"Code: commit `{result['git']['commit'][:12]}`{dirty}; per-round figures in "
        "agent_path.json.",
    ]
    return notes


def render_markdown(result: dict[str, Any], more: list[str] | None = None) -> str:
    """The report; ``more``: lines of further sections (the comparators')."""
    degraded = [
        f"{name} {row} round {index}: {'; '.join(s['chain_degraded'])}"
        for name, scenario in result["scenarios"].items()
        for row, samples in scenario["samples"].items()
        for index, s in enumerate(samples, start=1)
        if s.get("chain_degraded")
    ]
    lines = [
        f"# Agent path vs bare FastAPI ({result['date']}, `{result['command']}`)",
        "",
        render_table(result["table"]),
        "",
    ]
    if degraded:
        lines += [
            "**The full chain did not do its full work in:** " + " | ".join(degraded) + " "
            "(the rate limiter failed open: its Redis calls timed out under that load).",
            "",
        ]
    lines += [f"- {note}" for note in _notes(result)]
    lines += more or []
    return "\n".join(lines) + "\n"


def write_results(result: dict[str, Any], markdown: str) -> tuple[Path, Path]:
    return save_results(RESULT_NAME, result, markdown)
