"""The `servingbench` command line. Bad input ends in one line on stderr and a non-zero exit; the exit
codes (EXIT_CODES_HELP, shown by every command's --help) tell scripts and CI how a run went."""
from __future__ import annotations

import math
import re
import sys
import time
from importlib import resources
from pathlib import Path

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

import servingbench
from servingbench.config import (
    LOADGEN_SCENARIOS,
    EndpointSettings,
    TuneSettings,
    load_settings,
    load_study,
    preset_names,
)
from servingbench.errors import ResultsDiskFull, ServerStartError, ServingbenchError, missing_models_extra

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_SLO = 3
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143
EXIT_CODES_HELP = ("Exit codes: 0 all cells ok or unsupported; 1 a cell failed or an answer was wrong; 2 bad input; "
                   "3 an SLO gate breached (compare: a regression); 130 interrupted; 143 terminated.")


def _int_list(ctx, param, value: str | None) -> list[int] | None:
    if value is None:
        return None
    try:  # an empty item (1,,2 or a trailing comma) is a typo, not a shorter list
        numbers = [int(v) for v in value.split(",")]
    except ValueError:
        raise click.BadParameter(f"expected comma-separated integers like 1,10,25, got '{value}'") from None
    if any(n < 1 for n in numbers):
        raise click.BadParameter("user counts must be positive integers")
    return numbers


MAX_RATES = 1000  # each rate is a LoadGen trial of its own: more is a typo


def parse_rates(text: str) -> list[float]:
    """`Q`, `Q1,Q2,...` or `START:STOP:STEP` (STOP included when a step lands on it), or a mix, comma-separated."""
    rates: list[float] = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            raise ValueError("expected rates like 10, 5,10,20 or 5:40:5, got an empty one")
        try:
            numbers = [float(n) for n in item.split(":")]
        except ValueError:
            raise ValueError(f"'{item}' is not a rate (Q) nor a range (START:STOP:STEP)") from None
        if len(numbers) == 3:
            start, stop, step = numbers
            if step <= 0:
                raise ValueError(f"range '{item}': STEP must be positive")
            if stop < start:
                raise ValueError(f"range '{item}' is empty: STOP is below START")
            # a little slack so that 0.1:0.3:0.1 still ends on 0.3 despite binary fractions
            count = int((stop - start) / step + 1e-9) + 1
            if count > MAX_RATES:
                raise ValueError(f"range '{item}' gives {count} rates; at most {MAX_RATES}")
            numbers = [round(start + i * step, 9) for i in range(count)]
        elif len(numbers) != 1:
            raise ValueError(f"'{item}' is not a rate (Q) nor a range (START:STOP:STEP)")
        rates += numbers
    if not all(0 < r < math.inf for r in rates):
        raise ValueError(f"rates must be positive numbers, got {next(r for r in rates if not 0 < r < math.inf):g}")
    return list(dict.fromkeys(rates))


def _rate_list(ctx, param, value: str | None) -> list[float] | None:
    if value is None:
        return None
    try:
        return parse_rates(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def _stdout_console() -> Console:
    """Off a terminal, wide enough that piped or logged table rows stay whole."""
    return Console() if sys.stdout.isatty() else Console(width=200)


def _name_list(ctx, param, value: str | None) -> list[str] | None:
    if value is None:
        return None
    names = [v.strip() for v in value.split(",")]
    if not all(names):  # like 1,,2 for numbers: a typo, not a shorter list
        raise click.BadParameter(f"expected comma-separated names like reference,triton, got an empty one in '{value}'")
    return names


@click.group(context_settings={"help_option_names": ["-h", "--help"]}, epilog=EXIT_CODES_HELP)
@click.version_option(servingbench.__version__, prog_name="servingbench")
def cli() -> None:
    """Benchmark ML serving frameworks on real models: speed, reliability, usability."""


def _finish(summary, display, results_path: Path) -> None:
    """The final table, why any cell failed, and the exit code the summary calls for."""
    from servingbench.analysis.outcome import cell_failures
    from servingbench.analysis.slo import breaches

    display.final(summary)
    display.console.print(f"results: {results_path} (tables in {results_path / 'tables'})")
    failures = cell_failures(summary)
    for line in failures:
        display.console.print(f"[red]failed:[/] {line}", highlight=False)
    breached = breaches(summary)
    for line in breached:
        display.console.print(f"[red]SLO breached:[/] {line}", highlight=False)
    code = EXIT_FAILED if failures else EXIT_SLO if breached else EXIT_OK
    if code:
        raise click.exceptions.Exit(code)


_load_options = [
    click.option("--users", callback=_int_list, help="closed-loop users per level, e.g. 1,10,25,50,75,100"),
    click.option("--repetitions", type=click.IntRange(min=1), help="trials per level"),
    click.option("--duration", type=click.FloatRange(min=0, min_open=True),
                 help="seconds measured per trial (LoadGen: its minimum duration)"),
    click.option("--warmup", type=click.FloatRange(min=0), help="seconds of warm-up before each closed-loop trial"),
    click.option("--until-stable", is_flag=True, default=None,
                 help="closed loop: measure in windows until the last 3 agree (throughput, p50), up to --max-duration"),
    click.option("--max-duration", type=click.FloatRange(min=0, min_open=True),
                 help="--until-stable: seconds before giving up with a warning"),
    click.option("--target-qps", callback=_rate_list, metavar="Q|Q1,Q2|START:STOP:STEP",
                 help="LoadGen server: Poisson arrival rates, one cell each, e.g. 10, 5,10,20 or 5:40:5 (stop "
                      "included); offline: the first is its expected rate"),
    click.option("--latency-bound-ms", type=click.FloatRange(min=0, min_open=True),
                 help="LoadGen server and --find-capacity: the latency bound"),
    click.option("--percentile", type=click.FloatRange(min=0, max=100, min_open=True, max_open=True),
                 help="the latency percentile held to the bound (default 99)"),
    click.option("--find-capacity", is_flag=True, default=False,
                 help="add the capacity search: the highest server rate LoadGen calls VALID under the bound"),
    click.option("--slo", "slo", multiple=True,
                 help="a gate every cell must pass, e.g. 'p99_ms<=200', 'failures_per_s==0', 'throughput_rps>=50', "
                      "'loadgen=valid' (repeatable; replaces the study's); a breach exits 3"),
]


def _load_overrides(scenarios: list[str] | None, users, repetitions, duration, warmup, until_stable, max_duration,
                    target_qps, latency_bound_ms, percentile, find_capacity, slo) -> dict:
    """The dotted study keys the shared load options set (None: leave the study's value)."""
    if find_capacity:
        scenarios = [*(scenarios or []), "capacity"]
    return {"load.scenarios": scenarios, "load.users": users, "load.repetitions": repetitions,
            "load.duration_s": duration, "load.warmup_s": warmup, "load.until_stable": until_stable,
            "load.max_duration_s": max_duration, "load.target_qps": target_qps,
            "load.latency_bound_ms": latency_bound_ms, "load.latency_percentile": percentile,
            "slo": list(slo) or None}


def load_options(func):
    for option in reversed(_load_options):
        func = option(func)
    return func


def device_options(func):
    """--device and --dtype: where every framework runs the network (server.device, server.dtype)."""
    func = click.option("--dtype", type=click.Choice(["float32", "float16", "bfloat16"]),
                        help="the network's precision on the device (default float32)")(func)
    return click.option("--device", help="auto (default: the first GPU, else the CPU), cpu, cuda or cuda:N")(func)


def _load_workers(ctx, param, value: str | None) -> int | str | None:
    if value is None or value == "auto":
        return value
    if not (value.isascii() and value.isdigit()):  # isdigit alone takes '²', which int() refuses
        raise click.BadParameter(f"must be a number of processes or auto, got '{value}'")
    return int(value)


def distributed_options(func):
    """Locust's distributed mode for the closed loop: more load processes here, and load workers on other hosts."""
    func = click.option("--master-bind", metavar="HOST:PORT",
                        help="where the load master listens for workers (default: loopback on a free port; "
                             "0.0.0.0:5557 with --remote-workers)")(func)
    func = click.option("--remote-workers", type=click.IntRange(min=0),
                        help="closed loop: wait for this many `servingbench worker --master HOST:PORT` processes "
                             "on other hosts each trial")(func)
    return click.option("--load-workers", callback=_load_workers, metavar="N|auto",
                        help="closed loop: load processes on this host (Locust master/worker when more than 1); "
                             "auto: one per core but one")(func)


def _distributed_overrides(load_workers, remote_workers, master_bind) -> dict:
    return {"load.workers": load_workers, "load.remote_workers": remote_workers, "load.master_bind": master_bind}


@cli.command(epilog=EXIT_CODES_HELP)
@click.argument("study", required=False)
@click.option("--out", type=click.Path(path_type=Path), help="results folder (default results/<timestamp>)")
@click.option("--frameworks", callback=_name_list, help="comma-separated, e.g. reference,torchserve")
@click.option("--models", callback=_name_list, help="comma-separated, e.g. resnet50,wav2vec2-truncated")
@click.option("--scenarios", callback=_name_list,
              help="comma-separated: closed (the study's users), single_stream, multi_stream, server, offline, capacity")
@click.option("--pipeline", callback=_name_list,
              help="end_to_end (default: raw input in, task output out), network_only (tensors; the client pre- and "
                   "postprocesses), or end_to_end,network_only: each measured and ranked apart")
@click.option("--client-preprocess", type=click.Choice(["once", "per_request"]),
              help="network_only: preprocess each sample once before the trial (default, as the study), or in every "
                   "request inside the closed loop, its cost in the latency and under load")
@load_options
@distributed_options
@click.option("--accuracy", is_flag=True, default=None,
              help="also score a LoadGen AccuracyOnly run (top-1 agreement, WER, ROUGE-L) against the in-process model")
@click.option("--size", type=click.Choice(["tiny", "real"]), help="model size")
@click.option("--weights", help="random | pretrained | a local model directory")
@click.option("--threads", type=click.IntRange(min=1), help="intra-op threads per model worker")
@click.option("--runtime", type=click.Choice(["eager", "torchscript", "onnxruntime"]),
              help="the network inside the Python frameworks (default torchscript, as the study)")
@device_options
@click.option("--container", type=click.Choice(["docker", "podman", "apptainer"]),
              help="run each framework's server in its container image with this runtime (README \"Containers\")")
@click.option("--resume", type=click.Path(path_type=Path), metavar="DIR",
              help="finish the interrupted or partly failed study in results folder DIR: its finished trials are "
                   "kept, the rest run (STUDY and flags, if given, must resolve to DIR's study.yaml)")
def run(study, out, frameworks, models, scenarios, pipeline, client_preprocess, users, repetitions, duration, warmup,
        until_stable, max_duration, target_qps, latency_bound_ms, percentile, find_capacity, slo, load_workers,
        remote_workers, master_bind, accuracy, size, weights, threads, runtime, device, dtype, container, resume) -> None:
    """Run a STUDY: a preset (smoke, quick [default], study) or a YAML file."""
    from servingbench.display import Display
    from servingbench.orchestrate.study import StudyRunner
    from servingbench.results.store import default_results_dir

    overrides = {
        "frameworks": frameworks, "models": models, "pipeline": pipeline, "client_preprocess": client_preprocess,
        "size": size, "weights": weights, "accuracy": accuracy, "server.threads": threads, "server.runtime": runtime,
        "server.device": device, "server.dtype": dtype, "server.container.runtime": container,
        **_load_overrides(scenarios, users, repetitions, duration, warmup, until_stable, max_duration, target_qps,
                          latency_bound_ms, percentile, find_capacity, slo),
        **_distributed_overrides(load_workers, remote_workers, master_bind),
    }
    if resume is not None:
        return _resume(resume, study, overrides, out)
    resolved = load_study(study, overrides)
    if resolved.tune is not None:  # the study asks for tuning
        return _run_tune(resolved, out)
    display = Display()
    runner = StudyRunner(resolved, out or default_results_dir(), display)
    display.stage(f"study '{resolved.name}' → {runner.results.path}")
    _run_study(runner, display)


def _resume(directory: Path, study: str | None, overrides: dict, out: Path | None) -> None:
    """`run --resume DIR`: the study saved in DIR, finished (orchestrate/resume.py)."""
    from servingbench.display import Display
    from servingbench.orchestrate.resume import resumable, unfinished_cells
    from servingbench.orchestrate.study import StudyRunner

    if out is not None:
        raise ServingbenchError("--resume goes on in DIR itself: leave out --out")
    resolved, previous = resumable(directory, study, overrides)
    display = Display()
    if previous.complete and not unfinished_cells(resolved, previous):
        display.console.print(f"nothing to resume: every cell of {directory} has finished; nothing was run")
        return _finish(previous, display, directory.resolve())
    runner = StudyRunner(resolved, directory, display, previous)
    display.stage(f"resuming study '{resolved.name}' in {runner.results.path}")
    _run_study(runner, display)


def _run_study(runner, display) -> None:
    """The study's trials, then the final table and exit code; after Ctrl-C what finished is kept."""
    try:
        summary = runner.run()
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM: main() picks the exit code
        runner.interrupted()
        display.console.print(f"interrupted: the trials that finished are in {runner.results.path}")
        raise
    _finish(summary, display, runner.results.path)


def _run_tune(resolved, out: Path | None) -> None:
    """Tune every framework x model of a resolved study (`servingbench tune`, or `run` of a study with `tune:`)."""
    from servingbench.display import Display
    from servingbench.results.store import default_results_dir
    from servingbench.tune.runner import TuneRunner

    display = Display()
    runner = TuneRunner(resolved, out or default_results_dir(), display)
    display.stage(f"tuning '{resolved.name}' for the most throughput at {runner.bound} → {runner.results.path}")
    try:
        summary = runner.run()
    except KeyboardInterrupt:
        runner.interrupted()
        display.console.print(f"interrupted: what finished is in {runner.results.path}")
        raise
    display.tune_final(summary)
    display.console.print(f"results: {runner.results.path} (tables in {runner.results.path / 'tables'})")
    failed = [r for r in summary.results if r.status == "failed"]
    for result in failed:
        display.console.print(f"[red]failed:[/] {result.framework} / {result.model}: {result.reason}", highlight=False)
    if failed:
        raise click.exceptions.Exit(EXIT_FAILED)


@cli.command(epilog=EXIT_CODES_HELP)
@click.argument("study", required=False)
@click.option("--out", type=click.Path(path_type=Path), help="results folder (default results/<timestamp>)")
@click.option("--frameworks", callback=_name_list, help="comma-separated, e.g. torchserve,triton")
@click.option("--models", callback=_name_list, help="comma-separated, e.g. resnet50,efficientnet-lite0")
@click.option("--size", type=click.Choice(["tiny", "real"]), help="model size")
@click.option("--weights", help="random | pretrained | a local model directory")
@click.option("--latency-bound-ms", type=click.FloatRange(min=0, min_open=True),
              help="the bound the percentile must stay under (default: the study's load.latency_bound_ms)")
@click.option("--percentile", type=click.Choice(["50", "90", "95", "99"]), help="the percentile held to the bound")
@click.option("--budget-minutes", type=click.FloatRange(min=0, min_open=True),
              help="search time per framework x model (default 10); the re-measure comes on top")
@click.option("--search", type=click.Choice(["auto", "grid", "optuna"]),
              help="grid, Optuna's TPE, or auto: grid up to 12 candidates")
@click.option("--knobs", callback=_name_list, help="only these settings, e.g. workers,threads,batch_size")
@click.option("--users", callback=_int_list, help="the sweep's closed-loop levels (default 1,2,4,...,64)")
@click.option("--repetitions", type=click.IntRange(min=1), help="trials of the default and the winner's re-measure")
@click.option("--duration", type=click.FloatRange(min=0, min_open=True), help="seconds measured per trial")
@click.option("--warmup", type=click.FloatRange(min=0), help="seconds of warm-up before each trial")
@click.option("--min-queries", type=click.IntRange(min=1),
              help="LoadGen's minimum queries in the confirming Server run (default: enough to certify the "
                   "percentile)")
@click.option("--price-per-core-hour", type=click.FloatRange(min=0), help="for the cost per million requests")
@click.option("--price-per-gpu-hour", type=click.FloatRange(min=0), help="for the cost per million requests")
@device_options
def tune(study, out, frameworks, models, size, weights, latency_bound_ms, percentile, budget_minutes, search, knobs,
         users, repetitions, duration, warmup, min_queries, price_per_core_hour, price_per_gpu_hour, device,
         dtype) -> None:
    """Find each framework's best settings for each model of a STUDY (preset or YAML): the most throughput whose
    percentile latency stays under the bound, default vs tuned re-measured, cost per request."""
    resolved = load_study(study, {
        "frameworks": frameworks, "models": models, "size": size, "weights": weights,
        "load.latency_bound_ms": latency_bound_ms, "load.latency_percentile": percentile and float(percentile),
        "load.repetitions": repetitions, "load.duration_s": duration, "load.warmup_s": warmup,
        "load.min_query_count": min_queries, "tune.budget_minutes": budget_minutes, "tune.search": search,
        "tune.knobs": knobs, "tune.users": users, "tune.price_per_core_hour": price_per_core_hour,
        "tune.price_per_gpu_hour": price_per_gpu_hour, "server.device": device, "server.dtype": dtype,
    })
    if resolved.tune is None:  # a study without a tune: section takes the defaults
        resolved = resolved.model_copy(update={"tune": TuneSettings()})
    _run_tune(resolved, out)


@cli.command()
@click.argument("directory", type=click.Path(path_type=Path))
def report(directory: Path) -> None:
    """Re-render tables, figures and report.html from a saved results DIRECTORY (a tune folder's tune.json:
    its tables, Pareto figures and tune-report.html; a `servingbench slurm` folder: its jobs/ merged first)."""
    from servingbench.display import Display
    from servingbench.outputs.render import REPORT, render_outputs
    from servingbench.outputs.tune_outputs import TUNE_REPORT, render_tune_outputs
    from servingbench.results.merge import has_job_folders, write_merged
    from servingbench.results.store import SUMMARY, load_summary
    from servingbench.results.tune_store import TUNE_FILE

    if has_job_folders(directory):  # `servingbench slurm`'s per-job folders: merged into one study first
        merged = write_merged(directory)
        for line in merged.warnings():
            click.echo(f"warning: {line}", err=True)
    written, pages = [], []
    tune = (directory / TUNE_FILE).is_file()
    if tune:
        written += render_tune_outputs(directory)
        pages.append(directory / TUNE_REPORT)
    if not tune or (directory / SUMMARY).is_file():  # neither file: render_outputs says what is missing
        written += render_outputs(directory)
        Display(Console()).final(load_summary(directory))
        pages.append(directory / REPORT)
    click.echo(f"wrote {len(written)} files (tables/, figures/); open {' and '.join(map(str, pages))}")


def _percent(ctx, param, value: str | None) -> float | None:
    """"5%" or "5" as 5.0."""
    if value is None:
        return None
    try:
        number = float(value.strip().removesuffix("%"))
    except ValueError:
        raise click.BadParameter(f"expected a percentage like 5% or 5, got '{value}'") from None
    if not 0 <= number < float("inf"):
        raise click.BadParameter(f"expected a non-negative percentage, got '{value}'")
    return number


@cli.command()
@click.argument("dir_a", type=click.Path(path_type=Path))
@click.argument("dir_b", type=click.Path(path_type=Path))
@click.option("--fail-on-regression", "threshold_pct", callback=_percent, metavar="PCT",
              help="exit 3 when a change beyond run-to-run noise makes throughput or latency worse by more than "
                   "PCT percent, e.g. 5%")
@click.option("--format", "output_format", type=click.Choice(["table", "json", "csv"]), default="table",
              show_default=True, help="json and csv print only the document on stdout")
def compare(dir_a: Path, dir_b: Path, threshold_pct: float | None, output_format: str) -> None:
    """Change in throughput and p50/p99 latency per cell from results DIR_A to DIR_B."""
    from servingbench.outputs.compare import compare as compare_summaries
    from servingbench.outputs.compare import (
        comparison_csv,
        comparison_json,
        comparison_table,
        regression_line,
        unmatched_lines,
    )
    from servingbench.results.store import load_summary

    result = compare_summaries(load_summary(dir_a), load_summary(dir_b))
    if output_format == "table":
        console = _stdout_console()
        console.print(comparison_table(result, f"{dir_a} → {dir_b}", threshold_pct))
        for line in unmatched_lines(result):
            console.print(line, highlight=False)
    else:
        document = comparison_json if output_format == "json" else comparison_csv
        click.echo(document(result, threshold_pct), nl=False)
        if output_format == "csv":  # the JSON document lists them itself
            for line in unmatched_lines(result):
                click.echo(line, err=True)
    regressions = [] if threshold_pct is None else result.regressions(threshold_pct)
    if regressions:
        click.echo(f"{len(regressions)} regression(s) beyond run-to-run noise and worse than {threshold_pct:g}%:",
                   err=True)
        for change in regressions:
            click.echo(f"  {regression_line(change)}", err=True)
        raise click.exceptions.Exit(EXIT_SLO)


@cli.command(name="list")
@click.argument("study", required=False)
def list_command(study: str | None) -> None:
    """Frameworks (and whether they run here), models (registered, and a STUDY file's own) and presets."""
    from servingbench.adapters import adapter_names, get_adapter
    from servingbench.config import Study

    console = _stdout_console()
    frameworks = Table(title="frameworks", title_justify="left")
    for column in ("name", "available here", "runs from", "what"):
        frameworks.add_column(column, overflow="fold")  # reasons and fixes stay whole, never "…"
    for name in adapter_names():
        try:
            adapter = get_adapter(name, Study())
        except Exception as exc:  # noqa: BLE001 - a broken plugin is one row, not the end of the list
            reason = missing_models_extra(exc) or f"its adapter does not import: {type(exc).__name__}: {exc}"
            frameworks.add_row(name, escape(f"no: {reason}"), "", "")
            continue
        available = adapter.availability()
        details = dict(available.details)
        environment = details.pop("environment", "main" if available.ok else "")  # servingbench's own unless said
        versions = ", ".join(f"{k} {v}" for k, v in details.items())
        # escape: install hints hold brackets (pip install 'servingbench[rayserve]') that rich would take as markup
        frameworks.add_row(name, escape(f"yes ({versions})" if available.ok else f"no: {available.reason}"),
                           environment, escape(adapter.description))
    console.print(frameworks)
    console.print(_devices_table())
    console.print(_models_table(load_study(study).models if study else []))
    presets = Table(title="presets (servingbench run PRESET)", title_justify="left")
    presets.add_column("name")
    presets.add_column("what")
    for name in preset_names():
        text = resources.files("servingbench.presets").joinpath(f"{name}.yaml").read_text()
        first = next((line.lstrip("# ") for line in text.splitlines() if line.startswith("#")), "")
        presets.add_row(name, first)
    console.print(presets)


def _devices_table() -> Table:
    """What `server.device` can name here: the CPU, each GPU torch can use, or why there is none."""
    import os

    from servingbench.devices import gpu_host

    host = gpu_host()
    table = Table(title="devices (server.device; auto takes the first GPU)", title_justify="left")
    for column in ("device", "what"):
        table.add_column(column, overflow="fold")
    table.add_row("cpu", f"{os.cpu_count()} logical cores")
    versions = f"driver {host.driver}, CUDA {host.cuda_driver}, torch built for CUDA {host.torch_cuda}"
    for number, gpu in enumerate(host.gpus):
        table.add_row(f"cuda:{number}", escape(f"{gpu.name}, {gpu.memory_mib} MiB ({versions})"))
    if not host.gpus:
        table.add_row("cuda", escape(f"no GPU: {host.none_because}"))
    return table


def _models_table(own: list) -> Table:
    """The registered models (the zoo, plugins' entry points) and a study's own, each with where it comes from."""
    from servingbench.models import MODELS, ModelEntry, model_class, registered_models

    table = Table(title="models", title_justify="left")
    for column in ("name", "task", "from", "pretrained weights"):
        table.add_column(column, overflow="fold")
    for name, target in registered_models().items():
        origin = "servingbench" if name in MODELS else f"plugin {target}"
        try:
            spec = model_class(ModelEntry(name=name))
        except ServingbenchError as exc:  # a broken plugin is one row, not the end of the list
            table.add_row(name, "", origin, f"does not import: {exc}")
            continue
        weights = spec.hub_id or ("shipped with its package" if name in MODELS else "the plugin's own")
        table.add_row(name, spec.task, origin, weights)
    for entry in own:
        if entry.kind == "registered":
            continue
        task = entry.task or ("bare network" if entry.kind == "network" else "")
        source = entry.hf or entry.network or entry.python
        table.add_row(entry.name, task, f"study ({entry.kind})", str(source))
    return table


@cli.command()
@click.argument("framework")
@click.argument("model")
@click.option("--size", type=click.Choice(["tiny", "real"]), default="tiny", show_default=True)
@click.option("--weights", default="default", help="random | pretrained | a local model directory")
@click.option("--port", type=click.IntRange(1, 65535), help="HTTP port (default: a free one)")
@click.option("--threads", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--runtime", type=click.Choice(["eager", "torchscript", "onnxruntime"]),
              help="the network inside the Python frameworks (default torchscript, as the study)")
@click.option("--out", type=click.Path(path_type=Path), default=Path("serve"), show_default=True,
              help="folder for the packaged model and the server log")
@click.option("--study", "study_file", type=click.Path(path_type=Path, dir_okay=False),
              help="a study file whose models: defines MODEL (your own model)")
@device_options
@click.option("--container", type=click.Choice(["docker", "podman", "apptainer"]),
              help="run each framework's server in its container image with this runtime (README \"Containers\")")
def serve(framework, model, size, weights, port, threads, runtime, out, study_file, device, dtype, container) -> None:
    """Package MODEL (registered, or defined in --study FILE) for FRAMEWORK, start the server and keep it up
    until Ctrl-C."""
    from servingbench.adapters import get_adapter
    from servingbench.devices import load_placed
    from servingbench.display import Display
    from servingbench.launch.contracts import Ports
    from servingbench.launch.ports import ensure_port_free, free_ports
    from servingbench.models import get_model
    from servingbench.orchestrate.deployment import deployed
    from servingbench.orchestrate.try_request import try_lines

    study = load_study(str(study_file) if study_file else "smoke", {
        "frameworks": [framework], "models": [model], "size": size, "weights": weights, "server.threads": threads,
        "server.runtime": runtime, "server.device": device, "server.dtype": dtype,
        "server.container.runtime": container})
    adapter = get_adapter(framework, study)
    spec = get_model(study.models[0], size, weights, study.seed)
    availability = adapter.availability()
    if not availability.ok:
        raise ServingbenchError(f"{framework} is not available here: {availability.reason}")
    reason = adapter.unsupported_reason(spec)
    if reason:
        raise ServingbenchError(f"{framework} cannot serve {model}: {reason}")
    display = Display()
    picked = free_ports(Ports.COUNT)
    ports = Ports.of([ensure_port_free(port) if port else picked[0], *picked[1:]])
    run_dir = out.resolve() / framework / model
    display.stage(f"building {model} ({size}) on {adapter.placement.label} and packaging it for {framework} in "
                  f"{run_dir}")
    loaded = load_placed(spec, adapter.placement)
    with deployed(adapter, spec, loaded, run_dir, study.server.startup_timeout_s, ports) as live:
        display.stage(f"{framework} serves {model} at {live.launch.base_url} (log: {run_dir / 'server.log'})")
        for line in try_lines(live, spec.samples()[0]):
            click.echo(line)
        click.echo("Ctrl-C stops it.")
        try:
            while (problem := live.server.problem()) is None:
                time.sleep(1.0)
        except KeyboardInterrupt:
            click.echo("stopping")
            return
        raise ServerStartError(f"{framework} server: {problem}", live.server.log_tail())


_HTTP_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # a header name (RFC 9110 token)


def _header_text(value: str) -> bool:
    """What an HTTP header value can carry: printable Latin-1, no line breaks."""
    return all(c == "\t" or (" " <= c <= "~") or ("\xa0" <= c <= "\xff") for c in value)


@cli.command(epilog=EXIT_CODES_HELP)
@click.argument("url")
@click.option("--payload", type=click.Path(path_type=Path),
              help="the request body: a file, a folder (each file, sorted by name) or a .jsonl file (each line "
                   "a JSON body); a set is sent in turn")
@click.option("--payload-order", type=click.Choice(["round_robin", "random"]), default="round_robin",
              show_default=True, help="how closed-loop users pick from a payload set (LoadGen picks its own way)")
@click.option("--seed", type=int, default=0, show_default=True, help="--payload-order random: the seed")
@click.option("--metrics-url", help="a Prometheus metrics page read before and after each trial (counters and "
                                    "histograms, into each trial's server_metrics)")
@click.option("--method", type=click.Choice(["GET", "POST", "PUT"], case_sensitive=False), default="POST",
              show_default=True)
@click.option("--content-type", help="Content-Type of the payload (default: from each file's extension)")
@click.option("--header", "headers", multiple=True, help="extra header, 'Name: value' (repeatable)")
@load_options
@distributed_options
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=60.0, show_default=True,
              help="seconds before a request counts as failed")
@click.option("--scenario", type=click.Choice(list(LOADGEN_SCENARIOS) + ["closed"]), default=None,
              help="closed-loop users (the study; the default) or an MLPerf LoadGen scenario")
@click.option("--out", type=click.Path(path_type=Path), help="results folder (default results/<timestamp>)")
def load(url, payload, payload_order, seed, metrics_url, method, content_type, headers, users, repetitions, duration,
         warmup, until_stable, max_duration, target_qps, latency_bound_ms, percentile, find_capacity, slo,
         load_workers, remote_workers, master_bind, timeout, scenario, out) -> None:
    """Load-test any running HTTP endpoint at URL: closed-loop users, MLPerf LoadGen scenarios, capacity."""
    from servingbench.analysis.slo import parse_gates
    from servingbench.display import Display
    from servingbench.orchestrate.load_url import load_url
    from servingbench.results.store import default_results_dir

    parsed_headers = {}
    for header in headers:
        name, sep, value = (part.strip() for part in header.partition(":"))
        if not sep or not _HTTP_TOKEN.fullmatch(name) or not _header_text(value):
            raise ServingbenchError(f"--header must look like 'Name: value' (a token name, a printable value), "
                                    f"got {header!r}")
        parsed_headers[name] = value
    if content_type is not None and not (content_type.strip() and _header_text(content_type)):
        raise ServingbenchError(f"--content-type must be a media type like application/json, got {content_type!r}")
    if payload is not None and not payload.exists():
        raise ServingbenchError(f"payload file not found: {payload}")
    endpoint = EndpointSettings(url=url, method=method.upper(), payload=payload, payload_order=payload_order,
                                payload_seed=seed, content_type=content_type, headers=parsed_headers,
                                metrics_url=metrics_url)
    scenarios = [scenario] if scenario else None if find_capacity else ["closed"]
    overrides = {**_load_overrides(scenarios, users, repetitions, duration, warmup, until_stable, max_duration,
                                   target_qps, latency_bound_ms, percentile, find_capacity, slo),
                 **_distributed_overrides(load_workers, remote_workers, master_bind)}
    gates = parse_gates(overrides.pop("slo") or [])
    # Shorter defaults than a study's: one endpoint, a quick look.
    values = {"users": [1, 10], "repetitions": 1, "duration_s": 10.0, "warmup_s": 2.0, "request_timeout_s": timeout}
    values.update({key.removeprefix("load."): value for key, value in overrides.items() if value is not None})
    load_config = load_settings(values)  # all input checked before any folder is created
    display = Display()
    out = out or default_results_dir()
    summary = load_url(endpoint, load_config, gates, out, display)
    _finish(summary, display, out.resolve())


@cli.command()
@click.option("--master", required=True, metavar="HOST:PORT",
              help="the load master: the host running `servingbench run/load` with --remote-workers, and its "
                   "--master-bind port (5557 by default)")
@click.option("--trials", type=click.IntRange(min=1), help="stop after this many trials (default: until Ctrl-C)")
def worker(master: str, trials: int | None) -> None:
    """Be a load worker on this host: take trial after trial from the master at HOST:PORT, send its users'
    requests, record them and hand the records back (Locust's distributed mode)."""
    from servingbench.load.closed_loop import run_load_worker

    run_load_worker(master, trials)


@cli.command()
@click.argument("study")
@click.option("--partition", required=True, help="the SLURM partition every job runs in")
@click.option("--gres", help="generic resources per node, e.g. gpu:1")
@click.option("--time", "time_limit", metavar="HH:MM:SS", help="each job's time limit (SLURM's forms)")
@click.option("--account", help="the SLURM account to charge")
@click.option("--out", type=click.Path(path_type=Path),
              help="the shared folder every job writes into, seen by all nodes (default results/<timestamp>)")
@click.option("--load-nodes", type=click.IntRange(min=0), default=0, show_default=True,
              help="nodes for load workers besides the server's (0: server and load in one allocation)")
@click.option("--frameworks", callback=_name_list, help="comma-separated, e.g. reference,torchserve")
@click.option("--models", callback=_name_list, help="comma-separated, e.g. resnet50,wav2vec2-truncated")
@click.option("--dry-run", is_flag=True, help="only write the scripts (submit them yourself with sbatch)")
def slurm(study, partition, gres, time_limit, account, out, load_nodes, frameworks, models, dry_run) -> None:
    """Write one sbatch script per framework x model of STUDY (a preset or a YAML file) and submit them; each
    job runs `servingbench run` into OUT/jobs/, and `servingbench report OUT` merges them into one study."""
    from servingbench.cluster.slurm import slurm_resources, submit, write_scripts
    from servingbench.results.store import default_results_dir

    resolved = load_study(study, {"frameworks": frameworks, "models": models})
    resources = slurm_resources(partition=partition, gres=gres, time=time_limit, account=account,
                                load_nodes=load_nodes)
    jobs = write_scripts(resolved, out or default_results_dir(), resources)
    shared = jobs[0].study_file.parent
    for job in jobs:
        click.echo(f"wrote {job.script}")
    if dry_run:
        click.echo(f"submit each with `sbatch SCRIPT`; when they are done: servingbench report {shared}")
        return
    submitted = submit(jobs, partition)
    for job in submitted.jobs:
        click.echo(f"submitted job {job.job_id}: {job.framework} / {job.model} -> {job.out}")
    click.echo(f"follow them: squeue -j {','.join(j.job_id for j in submitted.jobs)} (logs in {shared}/slurm/logs)")
    click.echo(f"when they are done: servingbench report {shared}")


@cli.command()
@click.argument("frameworks", nargs=-1, required=True)
def install(frameworks: tuple[str, ...]) -> None:
    """Create the layered environment of each of FRAMEWORKS whose pins conflict with servingbench's own
    (kserve, mlserver, ...); frameworks that run from servingbench's environment need nothing."""
    from servingbench.adapters import adapter_class
    from servingbench.launch.venvs import create_layered_venv

    for name in frameworks:
        requirements = list(getattr(adapter_class(name), "venv_requirements", ()))
        if not requirements:
            click.echo(f"{name}: runs from servingbench's own environment (pip install -e '.[{name}]'); "
                       "nothing to create")
            continue
        python = create_layered_venv(name, requirements, log=lambda line, n=name: click.echo(f"{n}: {line}"))
        click.echo(f"{name}: ready ({python})")


@cli.command()
@click.argument("frameworks", nargs=-1)
@click.option("--out", type=click.Path(path_type=Path), default=Path("images"), show_default=True,
              help="folder for the definition files; server.container.image_dir looks there for <framework>.sif")
def images(frameworks: tuple[str, ...], out: Path) -> None:
    """Write the container image definitions (Apptainer .def and a Dockerfile) of FRAMEWORKS (default: all) whose
    server runs servingbench's own code; the others run from their official image and need none."""
    from servingbench.adapters import adapter_class, adapter_names
    from servingbench.launch.image_definitions import image_tag, sif_path, source_tree, write_definitions

    for name in frameworks or adapter_names():
        framework = adapter_class(name)
        if not framework.runs_servingbench_code:
            click.echo(f"{name}: runs from its official image {framework.container_image}" if framework.container_image
                       else f"{name}: starts no server; no image")
            continue
        definition, dockerfile = write_definitions(framework.image_recipe(), out)
        click.echo(f"{name}: apptainer build {sif_path(name, out)} {definition}")
        click.echo(f"{name}: docker build -f {dockerfile} -t {image_tag(name)} {source_tree()}")


@cli.command()
def assets() -> None:
    """Fetch the offline tokenizer assets (GPT-2 BPE for BART) into the cache, once."""
    from servingbench.models.assets import ensure_assets

    for name, path in ensure_assets(progress=click.echo).items():
        click.echo(f"{name}: {path}")


def _one_line(message: str) -> str:
    """An error as one line: a value it quotes from the user may hold line breaks or other control characters."""
    return "".join(c if c.isprintable() else ascii(c)[1:-1] for c in message)


def main(argv: list[str] | None = None) -> int:
    from servingbench.launch.process import Terminated, install_cleanup, stop_all

    install_cleanup()
    debug = "--debug" in (argv if argv is not None else sys.argv)
    args = [a for a in (argv if argv is not None else sys.argv[1:]) if a != "--debug"]
    try:
        # A command's click.exceptions.Exit(code) comes back as the return value.
        code = cli.main(args=args, prog_name="servingbench", standalone_mode=False)
        return code if isinstance(code, int) else EXIT_OK
    except click.exceptions.Abort as exc:  # click turns KeyboardInterrupt (and our SIGTERM) into Abort
        terminated = isinstance(exc.__cause__, Terminated)
        click.echo("terminated" if terminated else "interrupted", err=True)
        return EXIT_TERMINATED if terminated else EXIT_INTERRUPTED
    except click.UsageError as exc:
        command = exc.ctx.command_path if exc.ctx else "servingbench"
        click.echo(f"servingbench: error: {_one_line(exc.format_message())} (see '{command} --help')", err=True)
        return EXIT_BAD_INPUT
    except click.ClickException as exc:
        click.echo(f"servingbench: error: {_one_line(exc.format_message())}", err=True)
        return EXIT_BAD_INPUT
    except ResultsDiskFull as exc:  # not bad input: the run failed, what finished is kept
        click.echo(f"servingbench: error: {exc}", err=True)
        return EXIT_FAILED
    except ServerStartError as exc:
        click.echo(f"servingbench: error: {exc}", err=True)
        if exc.log_tail:
            click.echo("last server log lines:\n" + exc.log_tail, err=True)
        return EXIT_FAILED
    except ServingbenchError as exc:
        click.echo(f"servingbench: error: {_one_line(str(exc))}", err=True)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt as exc:
        terminated = isinstance(exc, Terminated)
        click.echo("terminated" if terminated else "interrupted", err=True)
        return EXIT_TERMINATED if terminated else EXIT_INTERRUPTED
    except Exception as exc:  # a bug: one line by default, the traceback with --debug
        if missing := missing_models_extra(exc):  # `run`, `serve` on a light install
            click.echo(f"servingbench: error: {missing}", err=True)
            return EXIT_BAD_INPUT
        if debug:
            raise
        click.echo(f"servingbench: internal error: {type(exc).__name__}: {exc} (rerun with --debug for details)",
                   err=True)
        return EXIT_FAILED
    finally:
        stop_all()


if __name__ == "__main__":
    sys.exit(main())
