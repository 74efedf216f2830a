"""The comparators' section of bench/agent_path.py's report: the naive design and LangServe
against bare from the same run, with our matching row beside them, the issue's own figures
for them (measured elsewhere: compare ratios, not absolute rates) and the "2x LangServe"
check."""

from __future__ import annotations

from typing import Any

from bench.agent_path_report import _RATES, S3_IDEAL, _fmt

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
