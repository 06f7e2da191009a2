"""Row types. The tables themselves are created by `migrations.py`; these classes mirror them, column by column
(tests/test_registry.py checks that the two agree)."""

import json
from datetime import datetime, timezone

from sqlmodel import Field, SQLModel


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class Hypernet(SQLModel, table=True):
    id: str = Field(primary_key=True)
    name: str | None = Field(default=None, unique=True)
    sha256: str = Field(unique=True)
    variant: str
    rank: int
    alpha: float
    targets: str  # JSON list of module types
    base_name: str
    base_sha256: str
    encoder_name: str
    encoder_sha256: str
    recipe: str | None = None
    config: str  # the hypernetwork folder's whole config.json
    created: datetime = Field(default_factory=utcnow)
    collection_sha256: str | None = None  # of the task collection it was trained on
    steps: int | None = None
    final_loss: float | None = None

    def as_dict(self) -> dict:
        d = self.model_dump()
        d["targets"] = json.loads(self.targets)
        d["config"] = json.loads(self.config)
        d["created"] = self.created.isoformat()
        return d


class Adapter(SQLModel, table=True):
    id: str = Field(primary_key=True)
    name: str | None = Field(default=None, unique=True)
    description: str
    truncated: bool = False
    hypernet_id: str | None = Field(default=None, foreign_key="hypernet.id")
    base_name: str
    base_sha256: str
    rank: int
    alpha: float
    targets: str  # JSON list of module types
    sha256: str
    size: int
    created: datetime = Field(default_factory=utcnow)
    examples_count: int = 0  # input/output examples it was made from besides (or instead of) its description
    examples_sha256: str | None = None  # t2l.examples.examples_sha256 of them

    def as_dict(self, tags: list[str]) -> dict:
        d = self.model_dump()
        d["targets"] = json.loads(self.targets)
        d["created"] = self.created.isoformat()
        d["tags"] = tags
        return d


class AdapterTag(SQLModel, table=True):
    adapter_id: str = Field(primary_key=True, foreign_key="adapter.id")
    tag: str = Field(primary_key=True)


class AdapterOutput(SQLModel, table=True):
    """A file or folder `make -o` was asked to write an adapter to, recorded with the adapter's row; `written` once
    it is (a make killed in between leaves it false, and a rerun of the same make writes it)."""

    adapter_id: str = Field(primary_key=True, foreign_key="adapter.id")
    path: str = Field(primary_key=True)  # absolute
    written: bool = False
    created: datetime = Field(default_factory=utcnow)


class EvalRun(SQLModel, table=True):
    """One metric of one benchmark run; the rows of one run share everything but metric, value and stderr."""

    id: str = Field(primary_key=True)
    adapter_id: str | None = Field(default=None, foreign_key="adapter.id")
    subject: str  # adapter id, "base", or the sha256 of an unregistered adapter file
    base_name: str
    base_sha256: str
    bench: str
    split: str
    n: int
    metric: str
    value: float
    stderr: float | None = None
    shots: int = 0
    protocol: str
    data_sha256: str
    limit: int | None = None
    dtype: str
    batch_size: int
    t2l_version: str
    created: datetime = Field(default_factory=utcnow)

    def as_dict(self) -> dict:
        d = self.model_dump()
        d["created"] = self.created.isoformat()
        return d


class Publication(SQLModel, table=True):
    """One upload of an adapter to the Hugging Face Hub (publishing again adds a row for the new commit)."""

    id: str = Field(primary_key=True)
    adapter_id: str = Field(foreign_key="adapter.id")
    repo_id: str
    commit_sha: str
    url: str
    private: bool = False
    created: datetime = Field(default_factory=utcnow)

    def as_dict(self) -> dict:
        return self.model_dump() | {"created": self.created.isoformat()}
