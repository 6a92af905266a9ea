"""``build_identifiers``: embeddings -> codebooks -> unique identifiers (the `index` stage).

Reads ``run_dir/embeddings/{semantic,collab}.safetensors`` (rows aligned to the
dataset's item order), learns the codebooks with residual k-means or the joint
RQ-VAE (``index.method``), and writes ``run_dir/identifiers/`` atomically:
``rqvae.safetensors`` (the codebooks, whichever method), ``identifiers.parquet``,
``index_report.json`` (with the diagnostics of :mod:`gensar.ids.diagnostics`)
and ``codebook_usage.png``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gensar import __version__, layout
from gensar.data.dataset import load_dataset
from gensar.embed.store import ItemEmbeddings
from gensar.errors import DataError
from gensar.ids.assign import IdentifierSteps, assign_identifier
from gensar.ids.config import IndexConfig
from gensar.ids.diagnostics import identifier_diagnostics
from gensar.ids.identifiers import PLOT, REPORT, WEIGHTS, ItemIdentifiers
from gensar.ids.report import plot_report, usage_by_level
from gensar.ids.rqkmeans import ResidualKMeans, save_rqkmeans
from gensar.ids.rqvae import COLLABORATIVE, KIND_PREFIX, SEMANTIC, JointRQVAE, save_rqvae
from gensar.ids.train import train_rqvae
from gensar.io import atomic_output_dir, sha256_file, write_json
from gensar.utils import torch_threads

EMBEDDING_FILES = {
    SEMANTIC: Path(layout.EMBEDDINGS) / layout.SEMANTIC_FILE,
    COLLABORATIVE: Path(layout.EMBEDDINGS) / layout.COLLAB_FILE,
}


def needed_towers(config: IndexConfig) -> list[str]:
    return [SEMANTIC, COLLABORATIVE] if config.variant == "joint" else [config.variant]


def load_inputs(
    run_dir: Path, item_ids: list[str], towers: list[str]
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The embedding matrices of ``towers``, aligned to ``item_ids``, and their provenance."""
    inputs: dict[str, torch.Tensor] = {}
    provenance: dict[str, Any] = {}
    for tower in towers:
        path = run_dir / EMBEDDING_FILES[tower]
        emb = ItemEmbeddings.load(path, expected_item_ids=item_ids)
        if not np.isfinite(emb.matrix).all():
            raise DataError(
                "the embeddings contain NaN or infinite values",
                where=path,
                fix="rebuild them (`gensar embed text` / `gensar embed collab`)",
            )
        inputs[tower] = torch.from_numpy(np.ascontiguousarray(emb.matrix, dtype=np.float32))
        provenance[tower] = {"path": str(path), "sha256": sha256_file(path), "dim": emb.dim}
    return inputs, provenance


IndexModel = JointRQVAE | ResidualKMeans


def assemble(
    model: IndexModel, steps: dict[str, IdentifierSteps], item_ids: list[str]
) -> ItemIdentifiers:
    """Split each kind's final codes into shared and specific parts and name every level."""
    config = model.config
    idents = model.identifier_levels()
    if config.variant == "joint":
        lm = config.shared_levels
        shared = steps[SEMANTIC].final[:, :lm]
        if not np.array_equal(shared, steps[COLLABORATIVE].final[:, :lm]):
            raise AssertionError("shared codes differ between the two identifiers")
        specific = {kind: steps[kind].final[:, lm:] for kind in (SEMANTIC, COLLABORATIVE)}
    else:
        shared = np.zeros((len(item_ids), 0), dtype=np.int64)
        specific = {kind: steps[kind].final for kind in (SEMANTIC, COLLABORATIVE)}
    levels: dict[str, list[str]] = {}
    disamb: list[str] = []
    for kind in (SEMANTIC, COLLABORATIVE):
        names = list(idents[kind])
        if steps[kind].disambiguated:
            # Named after the kind's own prefix; for an ablation, after the variant's.
            prefix = KIND_PREFIX[kind if config.variant == "joint" else config.variant]
            specific_count = sum(1 for n in names if n.startswith(prefix))
            names.append(f"{prefix}{specific_count + 1}")
            if names[-1] not in disamb:
                disamb.append(names[-1])
        levels[kind] = names
    return ItemIdentifiers(
        item_ids=list(item_ids),
        shared=shared,
        semantic=specific[SEMANTIC],
        collaborative=specific[COLLABORATIVE],
        levels=levels,
        variant=config.variant,
        codebook_size=config.codebook_size,
        disambiguation_levels=disamb,
    )


def assign_all(model: IndexModel, inputs: dict[str, torch.Tensor]) -> dict[str, IdentifierSteps]:
    """argmax -> Sinkhorn -> de-duplication for each identifier (each distinct one once)."""
    encoded = model.encode_all({t: inputs[t] for t in model.towers})
    codes = encoded.codes.numpy()
    column = {name: j for j, name in enumerate(model.level_names)}
    steps: dict[str, IdentifierSteps] = {}
    done: dict[tuple[str, ...], IdentifierSteps] = {}
    for kind, names in model.identifier_levels().items():
        key = tuple(names)
        if key not in done:
            cols = [column[n] for n in names]
            done[key] = assign_identifier(
                codes[:, cols],
                encoded.level_inputs[cols[-1]],
                model.quantizers[names[-1]],
                model.config,
            )
        steps[kind] = done[key]
    return steps


@torch.no_grad()
def reconstruction(model: IndexModel, inputs: dict[str, torch.Tensor]) -> dict[str, Any]:
    """Per tower: MSE in the model's input space and the fraction of variance unexplained."""
    if isinstance(model, ResidualKMeans):
        return model.reconstruction(inputs)
    out: dict[str, Any] = {}
    x = model.normalized({t: inputs[t] for t in model.towers})
    encoded = model.encode(x)
    for t in model.towers:
        recon = model.decoders[t](encoded.z_hat[t])
        mse = float((recon - x[t]).pow(2).mean())
        variance = float((x[t] - x[t].mean(0)).pow(2).mean())
        out[t] = {"mse": mse, "fraction_unexplained": mse / variance if variance > 0 else None}
    return out


def learn_codebooks(
    inputs: dict[str, torch.Tensor], config: IndexConfig, *, progress: bool = True
) -> tuple[IndexModel, dict[str, Any], float]:
    """The fitted model of ``config.method``, a training record, and the seconds it took."""
    start = time.perf_counter()
    if config.method == "rqkmeans":
        dims = {t: int(inputs[t].shape[1]) if t in inputs else 0 for t in (SEMANTIC, COLLABORATIVE)}
        model = ResidualKMeans(config, dims[SEMANTIC], dims[COLLABORATIVE])
        model.fit({t: inputs[t] for t in model.towers}, progress=progress)
        return model.eval(), {"method": "rqkmeans"}, time.perf_counter() - start
    trained = train_rqvae(inputs, config, progress=progress)
    record = {
        "method": "rqvae",
        "checkpoint_rule": config.checkpoint,
        "best_epoch": trained.best_epoch,
        "history": trained.history,
    }
    return trained.model, record, trained.seconds


def build_identifiers(
    dataset_dir: str | Path,
    run_dir: str | Path,
    config: IndexConfig | None = None,
    *,
    progress: bool = True,
) -> dict[str, Any]:
    """Learn the codebooks and write ``run_dir/identifiers/``; returns the report."""
    config = config or IndexConfig()
    start = time.perf_counter()
    run_dir = Path(run_dir)
    dataset = load_dataset(dataset_dir)
    item_ids = dataset.item_ids
    if len(item_ids) < 2:
        raise DataError(
            f"the dataset has {len(item_ids)} item(s); identifiers need at least 2",
            where=dataset.path,
            fix="prepare a dataset with more items",
        )
    inputs, provenance = load_inputs(run_dir, item_ids, needed_towers(config))
    loaded = time.perf_counter()
    with torch_threads(config.threads):
        model, training, train_seconds = learn_codebooks(inputs, config, progress=progress)
        assign_start = time.perf_counter()
        steps = assign_all(model, inputs)
        identifiers = assemble(model, steps, item_ids)
        assign_seconds = time.perf_counter() - assign_start
        recon = reconstruction(model, inputs)
    diagnostics = identifier_diagnostics(dataset, identifiers, seed=config.seed)

    report: dict[str, Any] = {
        "gensar_version": __version__,
        "variant": config.variant,
        "method": config.method,
        "items": len(item_ids),
        "identifier_length": {k: len(v) for k, v in identifiers.levels.items()},
        "levels": identifiers.levels,
        "collision_rate": {kind: steps[kind].rates() for kind in (SEMANTIC, COLLABORATIVE)},
        "unique_after_final": {
            kind: bool(steps[kind].rates()["final"] == 0.0) for kind in (SEMANTIC, COLLABORATIVE)
        },
        "disambiguated": {kind: steps[kind].disambiguated for kind in (SEMANTIC, COLLABORATIVE)},
        "sinkhorn_rounds": {
            kind: [r._asdict() for r in steps[kind].rounds] for kind in (SEMANTIC, COLLABORATIVE)
        },
        "codebook_usage": usage_by_level(identifiers),
        "reconstruction": recon,
        "diagnostics": diagnostics,
        "training": training,
        "settings": config.model_dump(mode="json"),
        "seed": config.seed,
        "inputs": {
            "dataset": str(dataset.path),
            "dataset_hash": dataset.manifest.get("content_hash"),
            "embeddings": provenance,
        },
        "timings_s": {
            "load": round(loaded - start, 3),
            "train": round(train_seconds, 3),
            "assign": round(assign_seconds, 3),
        },
    }
    with atomic_output_dir(layout.RunLayout(run_dir).identifiers) as tmp:
        if isinstance(model, ResidualKMeans):
            save_rqkmeans(model, tmp / WEIGHTS)
        else:
            save_rqvae(model, tmp / WEIGHTS)
        identifiers.save_table(tmp)
        plot_report(report, tmp / PLOT, title=f"{config.method}, {config.variant}")
        report["timings_s"]["total"] = round(time.perf_counter() - start, 3)
        write_json(tmp / REPORT, report)
    return report
