"""The summary tables and files of bench/agent_path.py (bench/results/agent_path.json, .md).

Two tables: ours against bare (issue 11's targets), and the comparators (the naive design,
LangServe) against bare from the same run, with our matching row beside them and the
issue's own figures for them (measured elsewhere: compare ratios, not absolute rates)."""

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


def render_markdown(result: dict[str, Any]) -> str:
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
    lines += render_comparators(result)
    return "\n".join(lines) + "\n"


# --- the comparators -------------------------------------------------------------------

STACKS = {"naive": "naive design", "langserve": "LangServe"}
# Issue 11's table for the comparators (measured elsewhere; bare there: 6,368 req/s in S1,
# 72,854 tokens/s in S2): the ratios to bare are what carries over.
ISSUE_FIGURES = {
    ("S1", "naive"): "1,153 req/s (18.1%)",
    ("S1", "langserve"): "1,270 req/s (19.9%)",
    ("S2", "naive"): "19,402 tokens/s (26.6%)",
    ("S2", "langserve"): "10,426 tokens/s (14.3%)",
    ("S3", "naive"): "55% of ideal",
    ("S3", "langserve"): "61% of ideal",
    ("S4", "naive"): "lateness p99 202 ms",
    ("S4", "langserve"): "lateness p99 5,848 ms",
}
# Per scenario: our row shown beside the comparators, the measures (label, medians key),
# and the server CPU figure with its unit.
_COMPARED: dict[str, tuple[str, list[tuple[str, str]], str, str]] = {
    "S1": ("us_hit", [("req/s", "requests_per_s")], "server_cpu_us_per_request", "us/request"),
    "S2": (
        "us_hit",
        [
            ("tokens/s", "tokens_per_s"),
            ("TTFT p50 ms", "ttft_p50_ms"),
            ("TTFT p99 ms", "ttft_p99_ms"),
        ],
        "server_cpu_us_per_event",
        "us/token event",
    ),
    "S3": (
        "us_bypass",
        [("% of ideal", "requests_per_s")],
        "server_cpu_us_per_request",
        "us/request",
    ),
    "S4": (
        "us_bypass",
        [
            ("lateness p50 ms", "lateness_p50_ms"),
            ("lateness p99 ms", "lateness_p99_ms"),
            ("lateness vs pacing schedule p99 ms", "schedule_lateness_p99_ms"),
            ("every stream open after s", "all_open_after_s"),
            ("RSS KiB / open stream", "rss_per_stream_kib"),
            ("RSS KiB / stream at peak", "rss_peak_per_stream_kib"),
            ("server CPU us / stream opened", "server_cpu_us_per_stream_opened"),
        ],
        "server_cpu_us_per_event",
        "us/event",
    ),
}


def _value(scenario: str, med: dict[str, float], key: str) -> float:
    if scenario == "S3":  # share of the ideal rate, as in the first table
        return round(med[key] / S3_IDEAL * 100, 1)
    return med[key]


def _ratio(value: float, bare: float) -> float | None:
    return round(value / bare, 4) if bare else None


def comparator_table(result: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per comparator figure: bare, the comparator, our matching row, their
    ratios to bare, and server CPU; a comparator whose load failed gets one row saying so."""
    rows: list[dict[str, Any]] = []
    for name, (ours, measures, cpu_key, unit) in _COMPARED.items():
        scenario = result["scenarios"].get(name)
        if scenario is None:
            continue
        med = scenario["medians"]
        bare, us = med["bare"], med.get(ours)
        for key, described in scenario["rows"].items():
            stack = described["server"]
            if stack not in STACKS:
                continue
            base = {"scenario": name, "stack": stack, "row": key, "label": described["label"]}
            if key not in med:
                failed = "; ".join(scenario.get("failures", {}).get(key, ["no measurement"]))
                rows.append({**base, "measure": "failed", "failed": failed})
                continue
            for index, (measure, field) in enumerate(measures):
                value = _value(name, med[key], field)
                bare_value = _value(name, bare, field)
                us_value = _value(name, us, field) if us else None
                rows.append(
                    {
                        **base,
                        "measure": measure,
                        "bare": bare_value,
                        "value": value,
                        "ratio": _ratio(value, bare_value),
                        "us": us_value,
                        "us_ratio": _ratio(us_value, bare_value) if us_value is not None else None,
                        "cpu_bare": bare[cpu_key],
                        "cpu": med[key][cpu_key],
                        "cpu_us": us[cpu_key] if us else None,
                        "cpu_unit": unit,
                        "issue": ISSUE_FIGURES.get((name, stack), "") if index == 0 else "",
                    }
                )
    return rows


def comparator_checks(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Issue 11's target against LangServe: our S1 cache-hit ratio to bare at least twice
    LangServe's, by rate and by server CPU per request (bare's CPU / the row's)."""
    s1 = result["scenarios"].get("S1")
    if s1 is None or not {"us_hit", "langserve"} <= s1["medians"].keys():
        return []
    med = s1["medians"]
    bare, us, ls = med["bare"], med["us_hit"], med["langserve"]
    checks = []
    for basis, field, better_low in (
        ("req/s", "requests_per_s", False),
        ("server CPU per request", "server_cpu_us_per_request", True),
    ):
        if better_low:  # less CPU is better: the ratio is bare's CPU over the row's
            ours, theirs = bare[field] / us[field], bare[field] / ls[field]
        else:
            ours, theirs = us[field] / bare[field], ls[field] / bare[field]
        checks.append(
            {
                "target": "S1 ratio to bare never below 2x LangServe's ratio",
                "basis": basis,
                "us_hit_ratio": round(ours, 4),
                "langserve_ratio": round(theirs, 4),
                "needed": round(2 * theirs, 4),
                "met": ours >= 2 * theirs,
            }
        )
    return checks


def _ratio_text(value: float | None, rate: bool) -> str:
    """A rate as a share of bare's; anything else (latency, memory) as a multiple."""
    if value is None:
        return ""
    return f"{value:.1%}" if rate else f"{value:.1f}x"


def render_comparator_table(rows: list[dict[str, Any]]) -> str:
    head = (
        "| scenario | measure | stack | bare | stack | stack vs bare | us (same run) | us vs bare "
        "| server CPU bare | server CPU stack | CPU stack / bare | issue 11 (elsewhere) |"
    )
    lines = [head, "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        stack = STACKS[r["stack"]]
        if r["measure"] == "failed":
            lines.append(f"| {r['scenario']} | failed: {r['failed']} | {stack} |" + " |" * 9)
            continue
        rate = r["measure"].startswith(_RATES)
        cpu_ratio = f"{r['cpu'] / r['cpu_bare']:.1f}x" if r["cpu_bare"] else ""
        lines.append(
            f"| {r['scenario']} | {r['measure']} | {stack} | {_fmt(r['bare'])} | "
            f"{_fmt(r['value'])} | {_ratio_text(r['ratio'], rate)} | {_fmt(r['us'])} | "
            f"{_ratio_text(r['us_ratio'], rate)} | {r['cpu_bare']:.1f} {r['cpu_unit']} | "
            f"{r['cpu']:.1f} {r['cpu_unit']} | {cpu_ratio} | {r['issue']} |"
        )
    return "\n".join(lines)


_DESCRIPTIONS = {
    "naive": "Naive design: bench/naive_app.py, FastAPI without middleware, the "
    "bearer JWT decoded with python-jose on every request, a Redis cache (redis.asyncio, key "
    "`cache:agent:{md5}`, SET with a 3,600 s TTL on a miss), bare's model and frames; its "
    "streams are never cached (as the lab's).",
    "langserve": "LangServe: bench/langserve_app.py, `add_routes` over a chat model answering "
    'bare\'s 64 tokens with bare\'s latency and pacing (invoke: `{"output": {"content": '
    "...}}`; stream: one `event: data` frame per token, CRLF-framed, TTFT at the first one "
    "with text), in .venv-langserve (bench/langserve-requirements.txt: the same uvicorn, "
    "FastAPI, Starlette and pydantic as ours).",
}


def _comparator_notes(result: dict[str, Any]) -> list[str]:
    notes = []
    for check in result.get("comparator_checks", []):
        verdict = "met" if check["met"] else "NOT met"
        notes.append(
            f"**{check['target']}** ({check['basis']}): us, cache hit "
            f"{check['us_hit_ratio']:.1%} of bare; LangServe {check['langserve_ratio']:.1%}, "
            f"so at least {check['needed']:.1%} is needed: {verdict}."
        )
    for name, info in result.get("comparators", {}).items():
        if info["status"] == "measured":
            notes.append(_DESCRIPTIONS[name])
        else:
            notes.append(f"{STACKS[name]}: not measured in this run: {info['reason']}.")
    notes.append("Same pinning, same core, same model timing as the rows above.")
    if (s4 := result["scenarios"].get("S4")) is not None:
        for key, m in s4["medians"].items():
            stack = s4["rows"][key]["server"]
            if stack in STACKS and not m["all_open_window_s"]:
                notes.append(
                    f"S4 {STACKS[stack]}: the {result['config']['s4_streams']} streams were "
                    f"never all open at once (all open after {m['all_open_after_s']} s): its "
                    "lateness is over every token frame."
                )
    return notes


def render_comparators(result: dict[str, Any]) -> list[str]:
    """The comparators' section of the markdown (empty when none ran)."""
    rows = result.get("comparator_table", [])
    if not rows and not result.get("comparators"):
        return []
    lines = ["", "## The stacks a user would pick instead (same run, model and pinning)", ""]
    if rows:
        lines += [render_comparator_table(rows), ""]
    lines += [f"- {note}" for note in _comparator_notes(result)]
    return lines


def write_results(result: dict[str, Any], markdown: str) -> tuple[Path, Path]:
    return save_results(RESULT_NAME, result, markdown)
