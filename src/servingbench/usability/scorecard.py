"""The versioned scorecard YAML files (one per framework, shipped in usability/scorecards/) and their loader."""
from __future__ import annotations

from importlib import resources

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from servingbench.errors import ServingbenchError

SCORECARD_VERSION = 1
CRITERIA = {"user_friendliness": "User-friendliness", "documentation": "Documentation quality",
            "features": "Project features", "community": "Community support",
            "maintenance": "Maintenance and update frequency"}  # the study's Table 8 rows
TABLE8_COLUMNS = ("PyTorch Torchserve", "TensorFlow Serving", "NVIDIA Triton")


class Criterion(BaseModel):
    model_config = ConfigDict(extra="forbid")

    score: int = Field(ge=1, le=5, description="5 = best: the study's score, or servingbench's for a framework "
                                               "the study did not cover")
    justification: str = Field(min_length=1, description="the study's reasons (section 5.2), or servingbench's: "
                                                         "measured evidence and the framework's cited docs")
    servingbench_note: str = Field("", description="where servingbench's own experience differs")


class Criteria(BaseModel):
    model_config = ConfigDict(extra="forbid")

    user_friendliness: Criterion
    documentation: Criterion
    features: Criterion
    community: Criterion
    maintenance: Criterion


class Scorecard(BaseModel):
    model_config = ConfigDict(extra="forbid")

    schema_version: int
    framework: str = Field(description="servingbench's adapter name")
    name: str
    study_column: str | None = Field(None, description="the framework's column in the study's Table 8; "
                                                       "None: not in the study, scored by servingbench")
    distributions: list[str] = Field(default_factory=list, description="Python distributions counted as its install")
    sources: list[str] = Field(default_factory=list, description="what servingbench's scores cite: docs pages, "
                                                                 "repositories, release histories")
    criteria: Criteria

    @model_validator(mode="after")
    def _scores_are_sourced(self) -> "Scorecard":
        if self.study_column is None and not self.sources:
            raise ValueError("a framework the study did not score needs the sources its scores cite")
        return self

    @property
    def scored_by(self) -> str:
        return "the study" if self.study_column else "servingbench"

    def rows(self) -> list[tuple[str, Criterion]]:
        """(criterion title, criterion) in the study's order."""
        return [(title, getattr(self.criteria, key)) for key, title in CRITERIA.items()]


def load_scorecards() -> list[Scorecard]:
    """Every shipped scorecard, in the study's column order (others after it)."""
    cards = []
    for entry in resources.files("servingbench.usability").joinpath("scorecards").iterdir():
        if not entry.name.endswith(".yaml"):
            continue
        data = yaml.safe_load(entry.read_text())
        version = data.get("schema_version") if isinstance(data, dict) else None
        if version != SCORECARD_VERSION:
            raise ServingbenchError(f"scorecard {entry.name} has schema_version {version}; "
                                    f"this servingbench reads {SCORECARD_VERSION}")
        try:
            cards.append(Scorecard.model_validate(data))
        except ValidationError as exc:
            error = exc.errors()[0]
            raise ServingbenchError(f"scorecard {entry.name}: {'.'.join(map(str, error['loc']))}: {error['msg']}") \
                from None
    order = {column: i for i, column in enumerate(TABLE8_COLUMNS)}
    return sorted(cards, key=lambda card: (order.get(card.study_column or "", len(order)), card.framework))
