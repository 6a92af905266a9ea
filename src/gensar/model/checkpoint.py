"""Atomic training checkpoints without pickle.

A checkpoint is a folder ``step-<N>/`` with ``model.safetensors`` (weights),
``optimizer.safetensors`` (AdamW moments, one tensor per parameter and slot),
``rng.safetensors`` (torch generator states) and ``state.json`` (step, epoch,
optimizer hyper-parameters, scheduler counters, Python/NumPy RNG states, early
stopping). It is written to a temporary folder and renamed, so a kill leaves
either the previous checkpoint or the new one, never half of one. Resuming
restores every piece, so the continued run computes the same weights as an
uninterrupted one.
"""

from __future__ import annotations

import json
import random
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from gensar.io import atomic_output_dir

_STEP = re.compile(r"step-(\d+)$")


def save_checkpoint(
    folder: Path,
    *,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    state: dict[str, Any],
    keep: int = 2,
) -> Path:
    """Write ``folder/step-<state['step']>`` atomically and prune all but the last ``keep``."""
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"step-{state['step']:08d}"
    with atomic_output_dir(target) as tmp:
        save_file(
            {k: v.detach().contiguous().cpu() for k, v in _unique_state(model).items()},
            str(tmp / "model.safetensors"),
        )
        tensors, meta = _optimizer_to_tensors(optimizer)
        save_file(tensors, str(tmp / "optimizer.safetensors"))
        rng = {"torch_cpu": torch.get_rng_state()}
        if torch.cuda.is_available():
            for n, s in enumerate(torch.cuda.get_rng_state_all()):
                rng[f"torch_cuda_{n}"] = s
        save_file(rng, str(tmp / "rng.safetensors"))
        py_state = random.getstate()
        np_state = np.random.get_state()
        payload = {
            **state,
            "optimizer": meta,
            "scheduler": scheduler.state_dict() if scheduler is not None else None,
            "python_rng": [py_state[0], list(py_state[1]), py_state[2]],
            "numpy_rng": [
                np_state[0],
                np_state[1].tolist(),
                int(np_state[2]),
                int(np_state[3]),
                float(np_state[4]),
            ],
        }
        (tmp / "state.json").write_text(json.dumps(payload))
    for old in list_checkpoints(folder)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return target


def list_checkpoints(folder: Path) -> list[Path]:
    """Complete checkpoints, oldest first (temporary folders of a killed write are ignored)."""
    if not folder.is_dir():
        return []
    found = [
        p
        for p in folder.iterdir()
        if p.is_dir() and _STEP.search(p.name) and (p / "state.json").is_file()
    ]
    return sorted(found, key=lambda p: int(_STEP.search(p.name).group(1)))


def load_checkpoint(
    path: Path, *, model: torch.nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any
) -> dict[str, Any]:
    """Restore everything ``save_checkpoint`` wrote; returns the trainer state."""
    try:
        load_state_strict(model, load_file(str(path / "model.safetensors")))
    except ValueError as err:
        raise RuntimeError(f"checkpoint {path} does not match the model: {err}") from None
    payload = json.loads((path / "state.json").read_text())
    _optimizer_from_tensors(
        optimizer, load_file(str(path / "optimizer.safetensors")), payload.pop("optimizer")
    )
    scheduler_state = payload.pop("scheduler")
    if scheduler is not None and scheduler_state is not None:
        scheduler.load_state_dict(scheduler_state)
    rng = load_file(str(path / "rng.safetensors"))
    torch.set_rng_state(rng["torch_cpu"])
    if torch.cuda.is_available():
        states = [rng[k] for k in sorted(rng) if k.startswith("torch_cuda_")]
        if states:
            torch.cuda.set_rng_state_all(states)
    py = payload.pop("python_rng")
    random.setstate((py[0], tuple(py[1]), py[2]))
    nps = payload.pop("numpy_rng")
    np.random.set_state((nps[0], np.asarray(nps[1], dtype=np.uint32), nps[2], nps[3], nps[4]))
    return payload


def load_state_strict(model: torch.nn.Module, weights: dict[str, torch.Tensor]) -> None:
    """Load ``weights`` into ``model``: every tensor must be used and every model tensor
    given, except the second names of tied weights (saved once)."""
    missing, unexpected = model.load_state_dict(weights, strict=False)
    tied = {k for k in missing if k in _tied_names(model)}
    if set(missing) - tied or unexpected:
        raise ValueError(f"missing {sorted(set(missing) - tied)}, unexpected {sorted(unexpected)}")


def _unique_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The state dict without duplicate views of tied weights (safetensors refuses shared memory)."""
    seen: set[int] = set()
    out = {}
    for name, tensor in model.state_dict().items():
        key = tensor.data_ptr()
        if key in seen and tensor.numel() > 0:
            continue
        seen.add(key)
        out[name] = tensor
    return out


def _tied_names(model: torch.nn.Module) -> set[str]:
    unique = set(_unique_state(model))
    return set(model.state_dict()) - unique


def _optimizer_to_tensors(
    optimizer: torch.optim.Optimizer,
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    state = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for index, slots in state["state"].items():
        for slot, value in slots.items():
            if torch.is_tensor(value):
                tensors[f"{index}.{slot}"] = value.detach().contiguous().cpu()
            else:
                scalars.setdefault(str(index), {})[slot] = value
    if not tensors:  # safetensors needs at least one entry
        tensors["__empty__"] = torch.zeros(1)
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def _optimizer_from_tensors(
    optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], meta: dict[str, Any]
) -> None:
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        if key == "__empty__":
            continue
        index, slot = key.split(".", 1)
        state.setdefault(int(index), {})[slot] = value
    for index, slots in meta.get("scalars", {}).items():
        state.setdefault(int(index), {}).update(slots)
    optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
