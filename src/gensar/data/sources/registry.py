"""The table of loaders `gensar prepare --source NAME` can use."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from pydantic import BaseModel

from gensar.data.raw import RawData
from gensar.errors import ConfigError


class LoadFn(Protocol):
    def __call__(self, path: Path, options: BaseModel) -> RawData: ...


@dataclass(frozen=True)
class Loader:
    name: str
    summary: str
    load: LoadFn
    options: type[BaseModel]


#: source name -> module (each module defines ``Options`` and ``load``).
SOURCES = {
    "amazon-unisrec": (
        "gensar.data.sources.amazon_unisrec",
        "Amazon 2018 in the UniSRec format (.text, .inter)",
    ),
    "amazon-2014": (
        "gensar.data.sources.amazon_2014",
        "raw McAuley reviews_*_5.json.gz + meta_*.json.gz (+ HEM queries)",
    ),
    "movielens": ("gensar.data.sources.movielens", "ML-100K, ML-1M or RecBole atomic files"),
    "kuaisar": (
        "gensar.data.sources.kuaisar",
        "the KuaiSAR release (rec_inter.csv, src_inter.csv, item_features.csv)",
    ),
    "jsonl": ("gensar.data.sources.jsonl", "bring your own data: items.jsonl + events.jsonl"),
}


def get_loader(name: str) -> Loader:
    if name not in SOURCES:
        raise ConfigError(f"unknown source {name!r}", fix=f"use one of: {', '.join(SOURCES)}")
    module_name, summary = SOURCES[name]
    module = importlib.import_module(module_name)
    return Loader(name=name, summary=summary, load=module.load, options=module.Options)
