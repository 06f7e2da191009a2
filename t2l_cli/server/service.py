"""What one `t2l serve` process holds: the base model (loaded once), the hypernetwork for `t2l:<description>`
models, and the adapters already loaded, swapped per request through the hooks. No FastAPI here."""

import threading
from collections import OrderedDict
from dataclasses import dataclass

from registry import RegistryError
from t2l.errors import T2LError
from t2l_cli.actions import use
from t2l_cli.actions.common import open_registry

DESCRIBED = "t2l:"  # a model named t2l:<description> is made from the description on first use
MAX_DESCRIPTION = 2_000  # characters; the description encoder reads only its first few hundred tokens anyway


def check_length(description: str) -> None:
    """A request's description is refused above MAX_DESCRIPTION characters (t2l's server and its vLLM resolver)."""
    if len(description) > MAX_DESCRIPTION:
        raise T2LError(f"the description is longer than {MAX_DESCRIPTION} characters; describe the task briefly")


class UnknownModel(T2LError):
    """The model a request names is not the base, a registered adapter, or t2l:<description>."""


class BadExamples(T2LError):
    """Examples a request cannot make an adapter from; the 400 names the field that holds them."""

    def __init__(self, message: str, param: str):
        super().__init__(f"{param}: {message}")
        self.param = param


class AmbiguousModel(T2LError):
    """The model a request names is a prefix of several adapters' ids; the 400 lists them."""

    param = "model"


def _adapter(reg, model: str):
    """The registered adapter `model` names; an id prefix that several adapters share is refused, listing them."""
    try:
        return reg.get_adapter(model)
    except RegistryError as e:
        if "ambiguous" not in str(e):
            raise
        hits = sorted((r for r in reg.list_adapters() if r.id.startswith(model)), key=lambda r: r.id)
        shown = ", ".join(f"{r.id[:12]}" + (f" ({r.name})" if r.name else "") for r in hits[:10])
        raise AmbiguousModel(
            f"the model {model!r} is the start of {len(hits)} adapters' ids: {shown}"
            f"{', ...' if len(hits) > 10 else ''}; give more characters of the id, or the "
            "adapter's name"
        ) from None


@dataclass(frozen=True)
class ServeSettings:
    """How `t2l serve` runs."""

    base: str | None = None
    """Base model; None: the base the hypernetwork was trained for."""
    hypernet: str = "default"
    """Hypernetwork for t2l:<description> models and POST /v1/adapters."""
    device: str = "auto"
    cached_adapters: int = 32
    """Adapters kept loaded (in BatchedLoRA's layout) between requests, least recent out."""
    max_batch: int = 8
    """Rows generated together (one per answer; a request with n > 1 takes n); more wait first come first served."""
    threads: int | None = None
    """torch's threads; None: torch's own choice (one per physical core)."""


class Service:
    """The loaded base and everything requests share. Answers run together in the engine's batch, each row with its
    own adapter."""

    def __init__(self, settings: ServeSettings, on_status=None):
        from t2l.chat import Engine

        if settings.threads is not None:
            import torch

            torch.set_num_threads(settings.threads)
        self.settings = settings
        reg = open_registry()
        self.hypernets = use.Hypernets()
        base = settings.base or use.hypernet_base(reg, settings.hypernet)
        self.engine = Engine.load(base, device=settings.device, on_status=on_status, max_batch=settings.max_batch)
        self.making = threading.Lock()  # one hypernetwork forward and registry write at a time
        self.described: dict[tuple, str] = {}  # (description, hypernet spec, examples' sha256) -> adapter id
        self.loaded: OrderedDict[str, object] = OrderedDict()  # adapter id -> LoRAWeights

    @property
    def base_name(self) -> str:
        return self.engine.ref.name

    def models(self) -> list[dict]:
        """The base, then every registered adapter, newest first."""
        rows = open_registry().list_adapters()
        return [{"id": "base", "description": f"the bare base model {self.base_name}", "adapter_id": None}] + [
            {"id": r.name or r.id, "description": r.description, "adapter_id": r.id, "created": r.created} for r in rows
        ]

    def model(self, model: str) -> dict:
        """One entry of models(): the base or a registered adapter (a t2l:<description> model is made on first
        use, and listed once made)."""
        if model in ("base", self.base_name):
            return self.models()[0]
        try:
            row = _adapter(open_registry(), model)
        except RegistryError as e:
            raise UnknownModel(
                f"the model {model!r} does not exist: use 'base' or an adapter from GET /v1/models ({e})"
            ) from None
        return {"id": row.name or row.id, "description": row.description, "adapter_id": row.id, "created": row.created}

    def resolve(self, model: str, examples: list = (), field: str = "t2l_examples") -> use.Chosen:
        """'base' (or the base's name), a registered adapter's name or id, or t2l:<description> (made from
        `examples` too, t2l.examples.Shot, given in the request's `field`; `t2l:` alone: from the examples alone).
        Never a path: a request must not make the server read files of its choosing."""
        if model.startswith(DESCRIBED):
            return self.describe(model[len(DESCRIBED) :], examples=examples, field=field)
        if examples:
            raise BadExamples(
                f"examples make an adapter, so they go with a {DESCRIBED}<description> model (or "
                f"{DESCRIBED} alone, for the examples without a description), not {model!r}",
                field,
            )
        if model in ("base", self.base_name):
            return use.Chosen("base")
        reg = open_registry()
        try:
            row = _adapter(reg, model)
        except RegistryError as e:
            raise UnknownModel(
                f"the model {model!r} does not exist: use 'base', an adapter from GET /v1/models, "
                f"or {DESCRIBED}<description> ({e})"
            ) from None
        if row.id in self.loaded:  # hash-checked when it was loaded: no need to read the file again
            return use.Chosen(row.name or row.id[:8], row.id, hypernet_id=row.hypernet_id)
        return use.chosen_row(reg, row)

    def describe(
        self, description: str, name: str | None = None, examples: list = (), field: str = "examples"
    ) -> use.Chosen:
        """The registered adapter for `description` (and `examples`, given in the request's `field`) from the
        server's hypernetwork, made on first use."""
        from t2l.examples import examples_sha256

        check_length(description)
        examples = list(examples)
        reg = open_registry()
        most = use.hypernet_examples(reg, self.settings.hypernet) if examples else 0
        if examples and not most:
            raise BadExamples(
                "this server's hypernetwork reads descriptions only; send the description alone, or "
                "serve one trained with examples (`t2l serve --hypernet H`, H from `t2l train --recipe "
                "sft-examples`)",
                field,
            )
        if len(examples) > most:
            raise BadExamples(
                f"{len(examples)} examples given; this server's hypernetwork was trained with at most "
                f"{most}: send {most} or fewer",
                field,
            )
        key = (description.strip(), self.settings.hypernet, examples_sha256(examples) if examples else None)
        with self.making:
            if key in self.described and name is None:
                try:
                    return use.chosen_row(reg, reg.get_adapter(self.described[key]))
                except RegistryError:  # removed since: make it again
                    del self.described[key]
            chosen = use.describe_adapter(
                reg, self.hypernets, description, self.settings.hypernet, base=self.settings.base, examples=examples
            )
            if name is not None:
                chosen = use.save_chosen(reg, chosen, name)
            self.described[key] = chosen.adapter_id
            return chosen

    def weights(self, chosen: use.Chosen):
        """`chosen` loaded for the engine (None for the base), from the cache when it was used lately."""
        if chosen.is_base:
            return None
        key = chosen.adapter_id or str(chosen.path)
        with self.making:
            if key in self.loaded:
                self.loaded.move_to_end(key)
                return self.loaded[key]
            if chosen.path is None and chosen.made is None:  # resolved as loaded, evicted since: read it again
                reg = open_registry()
                chosen = use.chosen_row(reg, reg.get_adapter(key))
            self.loaded[key] = use.load_chosen(self.engine, chosen)
            while len(self.loaded) > self.settings.cached_adapters:
                self.loaded.popitem(last=False)
            return self.loaded[key]
