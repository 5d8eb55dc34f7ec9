"""The results folder on disk. summary.json is replaced atomically after every trial."""
from __future__ import annotations

import datetime as dt
import errno
import json
import shutil
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from servingbench.atomic import write_atomically
from servingbench.errors import ResultsDiskFull, ServingbenchError
from servingbench.results.schema import SCHEMA_VERSION, Summary

SUMMARY = "summary.json"
DISK_FULL = (errno.ENOSPC, errno.EDQUOT)
# Less room than this after something failed: the full disk is why (a load generator writing its records, a
# packager, a log), even where that process could only say "exited with code 1".
LOW_SPACE_BYTES = 1 << 20


def now_iso() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def default_results_dir() -> Path:
    return Path("results") / dt.datetime.now().strftime("%Y%m%d-%H%M%S")


class ResultsDir:
    def __init__(self, path: Path):
        self.path = path

    @classmethod
    def create(cls, path: Path) -> "ResultsDir":
        """The folder, made absolute first: servers run in their own folders and get paths inside this one."""
        path = path.expanduser().resolve()
        try:
            path.mkdir(parents=True, exist_ok=True)
            (path / "requests").mkdir(exist_ok=True)
            probe = path / ".write-test"
            probe.write_text("")
            probe.unlink()
        except OSError as exc:
            raise ServingbenchError(f"cannot write results to {path}: {exc.strerror}") from None
        return cls(path)

    @property
    def requests_dir(self) -> Path:
        return self.path / "requests"

    @property
    def work_dir(self) -> Path:
        """Packaged models, server and load-generator logs."""
        return self.path / "work"

    def write_text(self, name: str, text: str) -> Path:
        target = self.path / name
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            write_atomically(target, text)
        except OSError as exc:
            if exc.errno in DISK_FULL:
                raise self.disk_full(name) from exc
            raise
        return target

    def disk_full(self, writing: str) -> ResultsDiskFull:
        return ResultsDiskFull(
            f"the disk holding {self.path} is full ({writing} could not be written): the study stopped; "
            f"what finished before is kept there. Free some space, then `servingbench run --resume {self.path}` "
            "runs the rest")

    def raise_if_full(self, failure: BaseException, writing: str) -> None:
        """Raise ResultsDiskFull if `failure` came from the results disk filling up, else return."""
        if isinstance(failure, ResultsDiskFull):
            raise failure
        if (isinstance(failure, OSError) and failure.errno in DISK_FULL) \
                or shutil.disk_usage(self.path).free < LOW_SPACE_BYTES:
            raise self.disk_full(writing) from failure

    def write_json(self, name: str, data: object) -> Path:
        return self.write_text(name, json.dumps(data, indent=2) + "\n")

    def save_summary(self, summary: Summary) -> None:
        summary.updated_at = now_iso()
        self.write_text(SUMMARY, summary.model_dump_json(indent=2) + "\n")

    def load_summary(self) -> Summary:
        return load_summary(self.path)


def load_summary(path: Path) -> Summary:
    return load_versioned(path / SUMMARY, Summary, SCHEMA_VERSION, "a servingbench results folder")


Document = TypeVar("Document", bound=BaseModel)


def load_versioned(file: Path, schema: type[Document], version: int, folder_kind: str) -> Document:
    """A versioned JSON document (summary.json, tune.json), every way it can be wrong told in one line."""
    if not file.is_file():
        raise ServingbenchError(f"no {file.name} in {file.parent}: not {folder_kind}")
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ServingbenchError(f"{file} is not valid JSON ({exc.msg} at line {exc.lineno})") from None
    except UnicodeDecodeError:
        raise ServingbenchError(f"{file} is not valid JSON (not UTF-8 text)") from None
    except OSError as exc:
        raise ServingbenchError(f"cannot read {file}: {exc.strerror}") from None
    found = data.get("schema_version") if isinstance(data, dict) else None
    if found != version:
        raise ServingbenchError(f"{file} has schema_version {found}; this servingbench reads {version}")
    try:
        return schema.model_validate(data)
    except ValidationError as exc:
        raise ServingbenchError(f"{file} does not match the {file.stem} schema: {exc.errors()[0]['msg']}") from None
