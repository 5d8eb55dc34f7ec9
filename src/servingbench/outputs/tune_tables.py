"""What `servingbench tune` found, as tables (default vs tuned per model, the ranking, every candidate) and as
the points of the Pareto figure, all from tune.json.

Each table is a list of columns; a column writes full precision into CSV (an estimate as three columns: mean,
CI low, CI high) and rounded text into Markdown and the HTML page.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from servingbench.outputs.findings import ci_overlap, number
from servingbench.results.schema import Estimate
from servingbench.results.tables import Table, ci_text
from servingbench.results.tune_schema import Candidate, Confirmation, Cost, TuneResult, TuneSummary

Row = TypeVar("Row")


@dataclass(frozen=True)
class Column(Generic[Row]):
    headers: tuple[str, ...]             # CSV
    csv: Callable[[Row], list[str]]      # one value per header, full precision
    header: str                          # Markdown and HTML
    text: Callable[[Row], str]           # rounded for reading


@dataclass(frozen=True)
class TuneTable(Generic[Row]):
    name: str
    title: str
    columns: list[Column[Row]]
    rows: list[Row]
    notes: list[str]

    def full(self) -> Table:
        """For CSV: every digit, estimates split into mean, CI low and CI high."""
        return Table(self.name, self.title, [h for c in self.columns for h in c.headers],
                     [[v for c in self.columns for v in c.csv(row)] for row in self.rows], notes=self.notes)

    def readable(self) -> Table:
        """For Markdown and HTML."""
        return Table(self.name, self.title, [c.header for c in self.columns],
                     [[c.text(row) for c in self.columns] for row in self.rows], notes=self.notes)


def full_text(value: float | int | None) -> str:
    return "" if value is None else repr(value)


def readable(value: float | int | None) -> str:
    """Large values to a tenth, small ones to three significant digits (CPU-seconds per request)."""
    if value is None:
        return "-"
    if isinstance(value, int):
        return str(value)
    return number(value) if abs(value) >= 1 else f"{value:.3g}"


def number_column(header: str, get: Callable[[Row], float | int | None],
                  text: Callable[[float | int | None], str] = readable) -> Column[Row]:
    return Column((header,), lambda row: [full_text(get(row))], header, lambda row: text(get(row)))


def estimate_column(header: str, get: Callable[[Row], Estimate | None]) -> Column[Row]:
    def csv(row: Row) -> list[str]:
        e = get(row)
        return [full_text(e.mean), full_text(e.ci95_low), full_text(e.ci95_high)] if e else ["", "", ""]
    return Column((header, f"{header} 95% CI low", f"{header} 95% CI high"), csv, f"{header} [95% CI]",
                  lambda row: ci_text(get(row), readable, "-"))


def text_column(header: str, get: Callable[[Row], str]) -> Column[Row]:
    return Column((header,), lambda row: [get(row)], header, lambda row: get(row) or "-")


def short_key(key: str) -> str:
    """server.options.torchserve.batch_size -> batch_size"""
    return key.rsplit(".", 1)[-1]


def _value(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def settings_text(settings: dict[str, Any], short: bool = True) -> str:
    """`key=value` separated by spaces; the study's own settings (no change) as "defaults"."""
    if not settings:
        return "defaults"
    return " ".join(f"{short_key(k) if short else k}={_value(v)}" for k, v in settings.items())


def winner(result: TuneResult) -> Candidate | None:
    return next((c for c in result.candidates if c.id == result.winner), None)


def percentile_name(summary: TuneSummary) -> str:
    return f"p{summary.percentile:g}"


def bound_text(summary: TuneSummary) -> str:
    return f"{percentile_name(summary)} ≤ {summary.latency_bound_ms:g} ms"


def models(summary: TuneSummary) -> list[str]:
    return list(dict.fromkeys(r.model for r in summary.results))


def _tuned_cost(get: Callable[[Cost], float | None]) -> Callable[[TuneResult], float | None]:
    return lambda r: get(r.tuned.cost) if r.tuned and r.tuned.cost else None


def _loadgen(confirmation: Confirmation | None) -> tuple[str, str]:
    """(verdict, why it is missing)."""
    if confirmation is None:
        return "", ""
    if confirmation.loadgen_valid is None:
        return "", confirmation.reason or "not run"
    return ("VALID" if confirmation.loadgen_valid else "INVALID"), ""


def _loadgen_text(confirmation: Confirmation | None, percentile: str) -> str:
    verdict, missing = _loadgen(confirmation)
    if confirmation is None or not verdict:
        return f"missing: {missing}" if missing else "-"
    qps, latency = confirmation.loadgen_target_qps, confirmation.loadgen_latency_ms
    at = f" at {readable(qps)} qps" if qps is not None else ""
    unmet = f"; unmet: {', '.join(confirmation.loadgen_unmet)}" if confirmation.loadgen_unmet else ""
    return verdict + at + (f" ({percentile} {readable(latency)} ms{unmet})" if latency is not None else unmet)


def _loadgen_column(percentile: str) -> Column[TuneResult]:
    def csv(r: TuneResult) -> list[str]:
        verdict, missing = _loadgen(r.tuned)
        tuned = r.tuned
        return [full_text(tuned.loadgen_target_qps if tuned else None), verdict or missing,
                full_text(tuned.loadgen_latency_ms if tuned else None), "; ".join(tuned.loadgen_unmet if tuned else [])]
    return Column(("LoadGen target qps", "LoadGen verdict", f"LoadGen {percentile} ms", "LoadGen unmet"), csv,
                  "LoadGen confirmation", lambda r: _loadgen_text(r.tuned, percentile))


def _note(r: TuneResult) -> str:
    default = f"default: {r.default.reason}" if r.default and r.default.reason else ""
    return "; ".join(p for p in (r.reason, default) if p)


def _space_column() -> Column[TuneResult]:
    return Column(("Candidates measured", "Space size"), lambda r: [str(len(r.candidates)), str(r.space_size)],
                  "Candidates / space", lambda r: f"{len(r.candidates)} / {r.space_size}" if r.search else "-")


def default_vs_tuned(summary: TuneSummary, model: str) -> TuneTable[TuneResult]:
    """One row per framework: throughput at the bound at the study's own settings and at the winner's, both
    re-measured with repetitions, the gain, the cost at the tuned point, LoadGen's confirmation, the search."""
    pct = percentile_name(summary)
    columns: list[Column[TuneResult]] = [
        text_column("Framework", lambda r: r.framework),
        text_column("Status", lambda r: r.status),
        number_column("Default users", lambda r: r.default.users if r.default else None),
        estimate_column("Default req/s", lambda r: r.default.throughput_rps if r.default else None),
        number_column("Tuned users", lambda r: r.tuned.users if r.tuned else None),
        estimate_column("Tuned req/s", lambda r: r.tuned.throughput_rps if r.tuned else None),
        text_column("Tuned settings", lambda r: settings_text(w.settings) if (w := winner(r)) else ""),
        number_column("Gain %", lambda r: r.gain_pct, lambda v: "-" if v is None else f"{v:+.1f}%"),
        estimate_column(f"Tuned {pct} ms", lambda r: r.tuned.latency_ms if r.tuned else None),
        number_column("Requests per core-second", _tuned_cost(lambda c: c.requests_per_core_s)),
        number_column("Server CPU-s per request", _tuned_cost(lambda c: c.server_cpu_s_per_request)),
        number_column("GPU-s per request", _tuned_cost(lambda c: c.gpu_s_per_request)),
        number_column("Cost per 1M requests", _tuned_cost(lambda c: c.cost_per_million),
                      lambda v: "-" if v is None else f"{v:.2f}"),
        _loadgen_column(pct),
        number_column("Search wall s", lambda r: r.search_wall_s if r.search else None),
        _space_column(),
        text_column("Search", lambda r: r.search),
        text_column("Note", _note),
    ]
    notes = [f"Throughput at the bound: requests per second at the closed-loop level with the highest throughput "
             f"whose {pct} stayed ≤ {summary.latency_bound_ms:g} ms with no failed request; default and tuned "
             "re-measured with repetitions (mean [95% CI]). Gain: tuned over default mean.",
             "Cost at the tuned point from the server's telemetry; cost per 1M requests in the currency of "
             "--price-per-core-hour / --price-per-gpu-hour, where given."]
    return TuneTable(f"tune-{model}", f"Default vs tuned settings, {model} ({bound_text(summary)})", columns,
                     [r for r in summary.results if r.model == model], notes)


@dataclass(frozen=True)
class Ranked:
    result: TuneResult
    rank: int | None          # None: nothing to rank (no tuned throughput)
    versus_above: str


def ranking(results: Sequence[TuneResult]) -> list[Ranked]:
    """Frameworks by tuned throughput at the bound (mean), highest first, each compared with the one ranked just
    above it: "not distinguishable from X" when the two 95% CIs overlap (low_a ≤ high_b and low_b ≤ high_a),
    "below X (CIs apart)" when they do not, "no CI" when either has none (fewer than two repetitions).
    Frameworks with nothing to rank follow, unranked, with why."""
    tuned = {r.framework: r.tuned.throughput_rps for r in results
             if r.tuned and r.tuned.throughput_rps.mean is not None}
    measured = sorted((r for r in results if r.framework in tuned), key=lambda r: -(tuned[r.framework].mean or 0.0))
    ranked = []
    for i, r in enumerate(measured):
        versus = ""
        if i:
            above = measured[i - 1]
            overlap = ci_overlap(tuned[above.framework], tuned[r.framework])
            versus = ("no CI" if overlap is None else f"not distinguishable from {above.framework}" if overlap
                      else f"below {above.framework} (CIs apart)")
        ranked.append(Ranked(r, i + 1, versus))
    for r in results:
        if r.framework not in tuned:
            status = "" if r.status == "ok" else f"{r.status}: "
            ranked.append(Ranked(r, None, f"not ranked: {status}{r.reason or 'no tuned throughput'}"))
    return ranked


def ranking_table(summary: TuneSummary) -> TuneTable[Ranked]:
    columns: list[Column[Ranked]] = [
        text_column("Model", lambda x: x.result.model),
        number_column("Rank", lambda x: x.rank),
        text_column("Framework", lambda x: x.result.framework),
        estimate_column("Tuned req/s", lambda x: x.result.tuned.throughput_rps if x.result.tuned else None),
        text_column("Tuned settings", lambda x: settings_text(w.settings) if (w := winner(x.result)) else ""),
        text_column("Versus the one above", lambda x: x.versus_above),
    ]
    rows = [x for model in models(summary) for x in ranking([r for r in summary.results if r.model == model])]
    return TuneTable("tune-ranking", f"Frameworks ranked by tuned throughput at the bound ({bound_text(summary)}), "
                     "per model", columns, rows,
                     ["Not distinguishable: its 95% CI overlaps the CI of the framework ranked just above; "
                      "no CI: one of the two was measured once."])


@dataclass(frozen=True)
class Point:
    """A candidate in the Pareto figure: its bounded percentile and throughput at its best level."""

    framework: str
    candidate: Candidate
    latency_ms: float
    throughput_rps: float


def points(summary: TuneSummary, model: str) -> list[Point]:
    """Every candidate of the model with a level that held the bound."""
    return [Point(r.framework, c, c.latency_ms, c.throughput_rps)
            for r in summary.results if r.model == model for c in r.candidates
            if c.latency_ms is not None and c.throughput_rps is not None]


def pareto_front(found: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the (latency, throughput) points no other point dominates, i.e. none has both lower-or-equal
    latency and higher-or-equal throughput with at least one of them strictly better. Equal points are all kept."""
    def dominates(a: tuple[float, float], b: tuple[float, float]) -> bool:
        return a[0] <= b[0] and a[1] >= b[1] and a != b
    return [i for i, p in enumerate(found) if not any(dominates(q, p) for q in found)]


def candidates_table(summary: TuneSummary, model: str | None = None) -> TuneTable[tuple[TuneResult, Candidate]]:
    """Every candidate of every framework x model (of one model if given), in search order."""
    pct = percentile_name(summary)
    front = set()
    for m in models(summary):
        shown = points(summary, m)
        front |= {id(shown[i].candidate) for i in pareto_front([(p.latency_ms, p.throughput_rps) for p in shown])}
    columns: list[Column[tuple[TuneResult, Candidate]]] = [
        text_column("Model", lambda x: x[0].model),
        text_column("Framework", lambda x: x[0].framework),
        text_column("Candidate", lambda x: x[1].id),
        Column(("Settings",), lambda x: [settings_text(x[1].settings, short=False)], "Settings",
               lambda x: settings_text(x[1].settings)),
        text_column("Status", lambda x: x[1].status),
        text_column("Reason", lambda x: x[1].reason),
        text_column("Correct", lambda x: {True: "yes", False: "WRONG", None: ""}[x[1].correct]),
        number_column("Best users", lambda x: x[1].best_users),
        number_column("Req/s at the bound", lambda x: x[1].throughput_rps),
        number_column(f"{pct} ms at best users", lambda x: x[1].latency_ms),
        number_column("Steps", lambda x: len(x[1].steps)),
        number_column("Wall s", lambda x: x[1].wall_s),
        text_column("Winner", lambda x: "yes" if x[1].id == x[0].winner else ""),
        text_column("Pareto front", lambda x: "yes" if id(x[1]) in front else ""),
        text_column("Results folder", lambda x: x[1].results_dir),
    ]
    rows = [(r, c) for r in summary.results if model in (None, r.model) for c in r.candidates]
    return TuneTable("tune-candidates", f"Every candidate measured ({bound_text(summary)})", columns, rows,
                     ["Req/s at the bound and the latency are at the candidate's best level that held the bound "
                      "(one sweep, no repetitions); empty where no level held."])
