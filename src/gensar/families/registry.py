"""The table of model families `gensar` can train, evaluate and serve.

A family is a module (usually a package under ``gensar/families/``) exporting the
:class:`~gensar.families.protocols.FamilyModule` names:

* ``NAME``: its registry name, the ``family:`` value of a run config's ``model:``
  section and of a benchmark's model entry;
* ``Config``: its config section (a pydantic model with ``family: Literal[NAME]``);
* ``train(dataset_dir, run_dir, config)``: build the model under ``run_dir``
  (``config`` is the whole :class:`~gensar.run.RunConfig`; the family's own section
  is ``config.model``);
* ``ranker(run_dir, config, name)``: the :class:`~gensar.families.protocols.Ranker`
  of a trained run (``name`` None: the family's default display name);
* ``load(model_dir)``: the :class:`~gensar.families.protocols.Servable` of a model
  directory (raise :class:`~gensar.families.protocols.Unsupported` if it is not served).

Optional names, with their defaults:

* ``STAGES`` or ``stages(config)``: the shared stages (``semantic``, ``collab``,
  ``index``, ``candidates``) built in the run directory before training (``()``);
* ``READS``: shared stages a family with no stages of its own uses when an earlier
  run of the same benchmark built them (e.g. the dense baseline reads the semantic
  embeddings) (``()``);
* ``TRAINS``: whether ``train`` builds a model directory (``True``); a family whose
  model is a shared stage (SASRec) or that needs none (BM25) sets it False;
* ``MODEL_DIR``: the run's folder holding the model (``"model"``);
* ``SEED_FIELD``: the dotted field of its section a benchmark sets to each seed
  (``None``: the family has no seed of its own);
* ``examples_seen(run_dir)``, ``with_budget(config, examples)``: equal-budget
  comparisons in a benchmark (families without ``with_budget`` are not budgeted;
  ``examples_seen`` alone still puts a row of examples seen in the table);
* ``training_seconds(run_dir)``: the training time its model card records (a
  benchmark's "training minutes" row);
* ``exact_variant(config)``: the config ranking candidates without pruning
  (a benchmark's ``exact_too``);
* ``TITLE``, ``BENCHMARK_NOTE``: its display name and a sentence on how it is
  evaluated, for a benchmark's results header;
* ``upgrade_config(data)`` (the default family only): read older config layouts.

**Out-of-tree families.** Call :func:`register` (``register("mine", "my_pkg.family")``
or with the module object) before loading configs, or name the module directly:
``family: my_pkg.family`` in a run config or benchmark (any dotted name that is not
a registered name is imported as the family module). A model directory records its
family in ``family.json`` (:func:`write_family_marker`), so ``gensar serve`` and
``gensar predict`` load it through the same table.
"""

from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from gensar.errors import ConfigError, DataError

#: family name -> module path (each module exports NAME, Config, train, ranker, load).
FAMILIES: dict[str, str] = {
    "gensar": "gensar.families.gensar",
    "sasrec": "gensar.families.baselines.sasrec",
    "bm25": "gensar.families.baselines.bm25",
    "dense": "gensar.families.baselines.dense",
    "popularity": "gensar.families.baselines.popularity",
    "gensr": "gensar.families.gensr",
    "synergen": "gensar.families.synergen",
}
#: The family of a config that names none, and of model directories without a marker
#: (every model directory written before the family seam).
DEFAULT_FAMILY = "gensar"
#: The file in a model directory naming its family.
MARKER = "family.json"

_modules: dict[str, ModuleType] = {}


def register(name: str, module: str | ModuleType) -> None:
    """Add (or replace) a family: ``module`` is the module object or its dotted path."""
    if isinstance(module, ModuleType):
        _modules[name] = module
        FAMILIES[name] = module.__name__
    else:
        _modules.pop(name, None)
        FAMILIES[name] = module


def unregister(name: str) -> None:
    """Remove a family added by :func:`register` (tests)."""
    FAMILIES.pop(name, None)
    _modules.pop(name, None)


def names() -> list[str]:
    return list(FAMILIES)


@dataclass(frozen=True)
class Family:
    """A family module with the optional names filled in by their defaults."""

    name: str
    module: ModuleType

    @property
    def Config(self) -> type:  # noqa: N802 - the module's name for it
        return self.module.Config

    @property
    def seed_field(self) -> str | None:
        """The dotted field of the section a benchmark sets to the seed (e.g. ``train.seed``)."""
        return getattr(self.module, "SEED_FIELD", None)

    @property
    def title(self) -> str:
        """Its display name (``TITLE``), e.g. in a benchmark's notes."""
        return getattr(self.module, "TITLE", self.name)

    @property
    def benchmark_note(self) -> str:
        """How it is evaluated, for a benchmark's header (``BENCHMARK_NOTE``)."""
        return getattr(self.module, "BENCHMARK_NOTE", "")

    @property
    def trains(self) -> bool:
        return bool(getattr(self.module, "TRAINS", True))

    @property
    def model_dir_name(self) -> str:
        return getattr(self.module, "MODEL_DIR", "model")

    @property
    def reads(self) -> tuple[str, ...]:
        return tuple(getattr(self.module, "READS", ()))

    def stages(self, config: Any) -> tuple[str, ...]:
        fn = getattr(self.module, "stages", None)
        if fn is not None:
            return tuple(fn(config))
        return tuple(getattr(self.module, "STAGES", ()))

    def train(self, dataset_dir: Path, run_dir: Path, config: Any, **options: Any) -> Any:
        """``module.train`` with those of ``options`` (``log``, ``resume``) it accepts."""
        fn = self.module.train
        accepted = inspect.signature(fn).parameters
        takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in accepted.values())
        return fn(
            Path(dataset_dir),
            Path(run_dir),
            config,
            **{k: v for k, v in options.items() if takes_any or k in accepted},
        )

    def ranker(self, run_dir: Path, config: Any, name: str | None = None):
        return self.module.ranker(Path(run_dir), config, name)

    def load(self, model_dir: Path):
        return self.module.load(Path(model_dir))

    def examples_seen(self, run_dir: Path) -> int | None:
        fn = getattr(self.module, "examples_seen", None)
        return fn(Path(run_dir)) if fn is not None else None

    def training_seconds(self, run_dir: Path) -> float | None:
        """Seconds the run's model trained for, from its own record (None: not recorded)."""
        fn = getattr(self.module, "training_seconds", None)
        return fn(Path(run_dir)) if fn is not None else None

    @property
    def budgeted(self) -> bool:
        return hasattr(self.module, "with_budget")

    def with_budget(self, config: Any, examples: int) -> Any:
        fn = getattr(self.module, "with_budget", None)
        return fn(config, examples) if fn is not None else config

    def exact_variant(self, config: Any) -> Any:
        fn = getattr(self.module, "exact_variant", None)
        if fn is None:
            raise ConfigError(
                f"family {self.name!r} has no exact candidate scoring",
                fix="remove exact_too from this model",
            )
        return fn(config)


def get_family(name: str) -> Family:
    """The family registered as ``name``, or the module ``name`` names (dotted path)."""
    if name in _modules:
        return Family(_modules[name].NAME, _modules[name])
    if name in FAMILIES:
        module_name = FAMILIES[name]
    elif "." in name:
        module_name = name
    else:
        raise ConfigError(
            f"unknown model family {name!r}",
            fix=f"use one of: {', '.join(FAMILIES)} (or a module path, e.g. my_pkg.family)",
        )
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise ConfigError(
            f"model family {name!r}: cannot import {module_name} ({err})",
            fix="check the family's module path and that its package is installed",
        ) from None
    missing = [n for n in ("NAME", "Config", "train", "ranker", "load") if not hasattr(module, n)]
    if missing:
        raise ConfigError(
            f"model family {name!r} ({module_name}) lacks {', '.join(missing)}",
            fix="a family module exports NAME, Config, train, ranker and load",
        )
    _modules[name] = module
    if name != module.NAME:  # a module path: also known by its own name from now on
        FAMILIES.setdefault(module.NAME, module_name)
        _modules.setdefault(module.NAME, module)
    return Family(module.NAME, module)


def section_of(data: Any) -> Any:
    """Validate a run config's ``model:`` mapping with its family's section (pydantic)."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        return data  # a validated section, or a wrong type pydantic reports
    name = data.get("family", DEFAULT_FAMILY)
    if not isinstance(name, str):
        raise ValueError("'family' must be a family name")
    if name not in FAMILIES and "." not in name:
        raise ValueError(f"unknown model family {name!r} (known: {', '.join(FAMILIES)})")
    try:
        family = get_family(name)
    except ConfigError as err:
        raise ValueError(err.args[0] if err.args else str(err)) from None
    return family.Config.model_validate({**data, "family": family.name})


def upgrade_config(data: dict[str, Any]) -> dict[str, Any]:
    """Older config layouts, read by the default family (its settings were top-level)."""
    fn = getattr(get_family(DEFAULT_FAMILY).module, "upgrade_config", None)
    return fn(data) if fn is not None else data


def write_family_marker(model_dir: Path, name: str) -> None:
    """Record the family of a model directory (read by :func:`load_model`)."""
    from gensar.io import write_json

    write_json(Path(model_dir) / MARKER, {"family": name})


def family_of(model_dir: Path) -> str:
    from gensar.io import read_json

    marker = Path(model_dir) / MARKER
    if not marker.is_file():
        return DEFAULT_FAMILY
    try:
        name = read_json(marker)["family"]
    except (OSError, ValueError, KeyError, TypeError):
        raise DataError(
            "unreadable family marker", where=marker, fix='write {"family": "<name>"}'
        ) from None
    if not isinstance(name, str):
        raise DataError("'family' must be a name", where=marker)
    return name


def load_model(model_dir: str | Path):
    """The :class:`~gensar.families.protocols.Servable` of a model directory, by its family."""
    return get_family(family_of(Path(model_dir))).load(Path(model_dir))
