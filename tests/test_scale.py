"""Scale: the synthetic generator of benchmarks/scale.py, and epochs drawn without all rows as dicts."""

from __future__ import annotations

import random
import zlib
from collections import Counter

import polars as pl
import pytest

from gensar.data import load_dataset, schema
from gensar.data.prepare import prepare_dataset
from gensar.data.synthetic import SyntheticSpec, generate
from gensar.families.gensar.tasks.builder import (
    COLLABORATIVE,
    SEMANTIC,
    SampleRows,
    TaskBuilder,
)
from gensar.families.gensar.tasks.config import TaskConfig
from gensar.families.gensar.tasks.templates import (
    DESC2ID,
    ID2DESC,
    NRIP,
    NSIP,
    NSQP,
    TEMPLATES,
    template_texts,
)
from gensar.tasks.vocab import (
    BEHAVIOUR_TOKENS,
    TASK_TOKENS,
    VocabConfig,
    build_tokenizer,
)

SPEC = SyntheticSpec(users=80, items=120, events_per_user=24, queries=60, items_per_leaf=10)


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    raw = tmp_path_factory.mktemp("synthetic-raw")
    info = generate(raw, SPEC)
    out = tmp_path_factory.mktemp("synthetic") / "dataset"
    prepare_dataset("jsonl", raw, out, log=lambda *_: None)
    return raw, info, load_dataset(out)


def test_generator_is_deterministic_for_a_seed(tmp_path, synthetic):
    raw, info, _ = synthetic
    again = generate(tmp_path / "again", SPEC)
    assert again == info
    for name in ("items.jsonl", "events.jsonl"):
        assert (tmp_path / "again" / name).read_bytes() == (raw / name).read_bytes()
    other = generate(tmp_path / "other", SyntheticSpec(**{**SPEC.__dict__, "seed": 1}))
    assert (tmp_path / "other" / "events.jsonl").read_bytes() != (raw / "events.jsonl").read_bytes()
    assert other["users"] == info["users"]


def test_generator_output_passes_the_loader_and_has_skew(synthetic):
    _, info, dataset = synthetic
    counts = dataset.manifest["counts"]
    assert counts["users"] == SPEC.users
    assert counts["items"] == SPEC.items
    assert counts["rec_interactions"] == info["rec_events"]
    assert counts["search_interactions"] == info["search_events"]
    assert counts["search_sessions"] == info["search_sessions"]
    assert 0 < info["search_sessions"] < info["search_events"]  # some sessions have 2 clicks
    for task in schema.TASKS:
        assert counts["samples"][task]["test"] > SPEC.users // 2
    # Zipf-like popularity: the top tenth of the items gets far more than a tenth of the clicks.
    clicks = dataset.events.filter(pl.col("item_id").is_not_null())["item_id"].value_counts()
    top = clicks.sort("count", descending=True).head(SPEC.items // 10)["count"].sum()
    assert top > 0.3 * clicks["count"].sum()
    items = dataset.items.row(0, named=True)
    assert len(items["categories"]) == 3 and len(items["text"].split()) >= 8


class HashedIdentifiers:
    """Identifiers made from a hash of the item id (the drawing does not depend on them)."""

    def __init__(self, item_ids):
        self.item_ids = list(item_ids)

    def _codes(self, item):
        h = zlib.crc32(item.encode())
        return [h % 8, (h >> 3) % 8, (h >> 6) % 8, (h >> 9) % 8, (h >> 12) % 8, (h >> 15) % 8]

    def semantic_tokens(self, item):
        c = self._codes(item)
        return [f"<m1_{c[0]}>", f"<m2_{c[1]}>", f"<s1_{c[2]}>", f"<s2_{c[3]}>"]

    def collaborative_tokens(self, item):
        c = self._codes(item)
        return [f"<m1_{c[0]}>", f"<m2_{c[1]}>", f"<c1_{c[4]}>", f"<c2_{c[5]}>"]

    def all_tokens(self):
        return sorted(
            {f"<{p}_{k}>" for p in ("m1", "m2", "s1", "s2", "c1", "c2") for k in range(8)}
        )


def eager_epoch(builder, samples_by_task, query_text, items, *, epoch, seed):
    """The epoch drawing as it was before SampleRows (every row a dict, rows sampled)."""
    rng = random.Random(seed * 1_000_003 + epoch)
    n_templates = len(TEMPLATES[NRIP])
    config = builder.config
    pick = (
        (lambda: rng.randrange(n_templates))
        if config.random_templates and not config.compact
        else (lambda: 0)
    )

    def draw(rows, count):
        if count == "all" or (isinstance(count, int) and count >= len(rows)):
            return list(rows)
        if not count:
            return []
        return rng.sample(rows, count)

    examples = []
    for task in (NRIP, NSIP, NSQP):
        for row in draw(samples_by_task.get(task, []), config.counts.get(task)):
            examples.append(builder.sample_example(task, row, query_text, pick()))
    for task in (DESC2ID, ID2DESC):
        pairs = [(item, kind) for item in items for kind in (SEMANTIC, COLLABORATIVE)]
        for item, kind in draw(pairs, config.counts.get(task)):
            examples.append(builder.alignment_example(task, item, kind, pick()))
    return examples


@pytest.mark.parametrize(
    "counts",
    [
        {"nrip": 150, "nsip": 90, "nsqp": 7, "desc2id": 11, "id2desc": 5},
        {"nrip": "all", "nsip": 10_000, "nsqp": 0, "desc2id": 3, "id2desc": "all"},
    ],
)
def test_lazy_drawing_gives_exactly_the_eager_examples(synthetic, counts):
    _, _, dataset = synthetic
    identifiers = HashedIdentifiers(dataset.item_ids)
    special = (
        list(BEHAVIOUR_TOKENS.values()) + list(TASK_TOKENS.values()) + identifiers.all_tokens()
    )
    queries = Counter(dataset.queries["text"].to_list())
    tokenizer = build_tokenizer(
        dataset.items["text"].to_list(),
        queries,
        special,
        VocabConfig(size=400, multiword=False),
        extra_texts=template_texts(),
    )
    config = TaskConfig(compact=False, random_templates=True, counts=counts)
    descriptions = dict(zip(dataset.item_ids, dataset.items["title"].to_list(), strict=True))
    builder = TaskBuilder(tokenizer, identifiers, descriptions, config)
    rec = dataset.samples_for(schema.RECOMMENDATION, "train")
    search = dataset.samples_for(schema.SEARCH, "train")
    eager_rows = {NRIP: rec.to_dicts(), NSIP: search.to_dicts()}
    eager_rows[NSQP] = eager_rows[NSIP]
    # Several chunks, like a table read from a Parquet file with several row groups.
    table = dataset.samples
    cuts = [0, table.height // 5, table.height // 2, table.height - 3, table.height]
    chunked = pl.concat([table[a:b] for a, b in zip(cuts, cuts[1:], strict=False)], rechunk=False)
    assert chunked["history"].n_chunks() == 4
    lazy_rows = {
        NRIP: SampleRows.of(chunked, schema.RECOMMENDATION, "train"),
        NSIP: SampleRows.of(chunked, schema.SEARCH, "train"),
    }
    lazy_rows[NSQP] = lazy_rows[NSIP]
    for epoch in (0, 3):
        kwargs = {"epoch": epoch, "seed": 7}
        want = eager_epoch(builder, eager_rows, dataset.query_text, dataset.item_ids, **kwargs)
        got = builder.epoch_examples(lazy_rows, dataset.query_text, dataset.item_ids, **kwargs)
        assert got == want
        assert len({e.task for e in got}) >= 4
