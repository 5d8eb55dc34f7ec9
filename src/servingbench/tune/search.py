"""Search strategies: which candidate configuration to measure next. Grid search for small spaces, Optuna's TPE
sampler for large ones; both skip what was measured already and never ask for more cores than the host has."""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

from servingbench.adapters.base import Host, Knob
from servingbench.errors import ServingbenchError
from servingbench.tune.space import Settings, grid, normalized

GRID_LIMIT = 12  # "auto": a grid up to this many candidates, TPE above


class Search(ABC):
    """Ask for the next settings to measure (None: nothing left), then tell what they scored (higher is better)."""

    kind: str

    def __init__(self, knobs: list[Knob], host: Host, measured: list[Settings], seed: int):
        self.knobs, self.host, self.seed = knobs, host, seed
        self.space = grid(knobs, host)
        self.measured = list(measured)

    @abstractmethod
    def ask(self) -> Settings | None: ...

    def tell(self, settings: Settings, value: float) -> None:
        self.measured.append(settings)


class GridSearch(Search):
    """Every candidate, one change from the first settings measured (the default) before two, and so on; among
    equals, changes of the knobs declared first (workers, threads) before later ones: a budget that ends the
    search early has then tried each knob on its own."""

    kind = "grid"

    def __init__(self, knobs: list[Knob], host: Host, measured: list[Settings], seed: int):
        super().__init__(knobs, host, measured, seed)
        if measured:
            start = measured[0]
            unchanged = [lambda s, k=k: s[k.key] == start.get(k.key) for k in knobs]
            self.space.sort(key=lambda s: (sum(not same(s) for same in unchanged), [same(s) for same in unchanged]))

    def ask(self) -> Settings | None:
        return next((s for s in self.space if s not in self.measured), None)


class OptunaSearch(Search):
    """TPE over the knobs as categorical choices; a suggestion already measured is told its earlier score."""

    kind = "optuna"
    MAX_REPEATS = 200  # suggestions in a row that were measured already or infeasible: the space is spent

    def __init__(self, knobs: list[Knob], host: Host, measured: list[Settings], seed: int):
        super().__init__(knobs, host, measured, seed)
        try:
            import optuna
        except ImportError:
            raise ServingbenchError("--search optuna needs Optuna: pip install 'servingbench[tune]'") from None
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self._optuna = optuna
        self.study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed))
        self.scores: dict[str, float] = {}
        self.pending: dict[str, Any] = {}  # settings -> the Optuna trial that asked for them

    def ask(self) -> Settings | None:
        for _ in range(self.MAX_REPEATS):
            if all(s in self.measured for s in self.space):
                return None
            trial = self.study.ask()
            settings = normalized({k.key: trial.suggest_categorical(k.name, list(k.values)) for k in self.knobs},
                                  self.knobs, self.host)
            if settings is None:
                self.study.tell(trial, state=self._optuna.trial.TrialState.PRUNED)
            elif settings in self.measured:
                self.study.tell(trial, self.scores.get(repr(settings), 0.0))
            else:
                self.pending[repr(settings)] = trial
                return settings
        return None

    def tell(self, settings: Settings, value: float) -> None:
        super().tell(settings, value)
        self.scores[repr(settings)] = value
        trial = self.pending.pop(repr(settings), None)
        if trial is not None:
            self.study.tell(trial, value)


SEARCHES: dict[str, type[Search]] = {"grid": GridSearch, "optuna": OptunaSearch}


def make_search(kind: str, knobs: list[Knob], host: Host, measured: list[Settings], seed: int) -> Search:
    """`kind` is grid, optuna or auto (grid while the space has at most GRID_LIMIT candidates)."""
    if kind == "auto":
        kind = "grid" if len(grid(knobs, host)) <= GRID_LIMIT else "optuna"
    return SEARCHES[kind](knobs, host, measured, seed)
