"""`gensar predict`: answer a JSON-lines file of requests with a trained model.

Each input line is one request::

    {"task": "recommend", "history": [...], "k": 10}
    {"task": "search", "history": [...], "query": "duct tape", "k": 10}
    {"task": "suggest_queries", "history": [...], "k": 5}

(``history`` as in :func:`gensar.answering.as_entries`; the model is loaded by its family,
:func:`gensar.families.registry.load_model`). Each output line holds the request's
``id`` (if given) and ``results``: item ids, titles and scores (or query texts).
Requests of the same task are answered in batches, each with its own ``k``
(:mod:`gensar.answering`, shared with ``gensar serve``): an answer never depends
on the other lines of the file.
"""

from __future__ import annotations

import json
from pathlib import Path

from gensar.answering import TASKS
from gensar.errors import DataError
from gensar.values import ValueProblem, check_json_text


def read_requests(path: Path) -> list[dict]:
    if not path.is_file():
        raise DataError(
            "input file not found", where=path, fix="give a JSON-lines file of requests"
        )
    requests = []
    with open(path, encoding="utf-8") as handle:
        for n, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                request = json.loads(line)
            except json.JSONDecodeError as err:
                raise DataError(
                    f"invalid JSON ({err.msg})", where=f"{path}:{n}", fix="one JSON object per line"
                ) from None
            if not isinstance(request, dict) or request.get("task") not in TASKS:
                raise DataError(
                    f"'task' must be one of {', '.join(TASKS)}",
                    where=f"{path}:{n}",
                    fix='e.g. {"task": "recommend", "history": []}',
                )
            history = request.get("history", [])
            if not isinstance(history, list):
                raise DataError(
                    "'history' must be a list",
                    where=f"{path}:{n}",
                    fix="see the README's history format",
                )
            for m, entry in enumerate(history):
                if not isinstance(entry, dict):
                    raise DataError(
                        f"history[{m}] must be an object like "
                        f'{{"behaviour": "rec_item", "item_id": "..."}}, got {type(entry).__name__}',
                        where=f"{path}:{n}",
                        fix="write each behaviour as an object (see the README's history format)",
                    )
            try:
                check_json_text(request)
            except ValueProblem as err:
                raise DataError(str(err), where=f"{path}:{n}", fix=err.fix) from None
            if request["task"] == "search" and not str(request.get("query", "")).strip():
                raise DataError(
                    "a search request needs a non-empty 'query'",
                    where=f"{path}:{n}",
                    fix='add "query": "..."',
                )
            k = request.get("k", 10)
            if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= 1000:
                raise DataError(
                    "'k' must be an integer from 1 to 1000",
                    where=f"{path}:{n}",
                    fix="set k, e.g. 10",
                )
            request["_line"] = n
            requests.append(request)
    return requests


def is_answer_file(path: Path) -> bool:
    """Whether ``path`` is an earlier output of ``gensar predict`` (or empty): safe to replace."""
    try:
        with open(path, encoding="utf-8") as handle:
            first = handle.readline()
    except (OSError, UnicodeDecodeError):
        return False
    if not first.strip():
        return path.stat().st_size == 0
    try:
        answer = json.loads(first)
    except json.JSONDecodeError:
        return False
    return isinstance(answer, dict) and {"task", "results"} <= set(answer)


def predict_file(
    model_dir: str | Path,
    input_path: str | Path,
    output_path: str | Path,
    *,
    batch_size: int = 32,
    overwrite: bool = False,
) -> int:
    """Answer every request of ``input_path`` into ``output_path`` (written atomically).

    An existing output is replaced only if it is an earlier answer file or ``overwrite``.
    """
    from gensar.answering import SEARCH, answer, as_entries
    from gensar.families.registry import load_model
    from gensar.io import atomic_write_bytes, check_output_file

    input_path, output_path = Path(input_path), Path(output_path)
    if output_path.exists() and input_path.exists() and output_path.samefile(input_path):
        raise DataError(
            "the output file is the input file",
            where=output_path,
            fix="write the answers elsewhere",
        )
    check_output_file(output_path, overwrite=overwrite, own=is_answer_file)
    requests = read_requests(input_path)
    model = load_model(model_dir)
    answers: list[dict | None] = [None] * len(requests)
    for task in TASKS:
        positions = [n for n, r in enumerate(requests) if r["task"] == task]
        for start in range(0, len(positions), batch_size):
            chunk = positions[start : start + batch_size]
            jobs = [
                (
                    as_entries(requests[n].get("history", [])),
                    *([requests[n]["query"]] if task == SEARCH else []),
                    int(requests[n].get("k", 10)),
                )
                for n in chunk
            ]
            for n, ranked in zip(chunk, answer(model, task, jobs), strict=True):
                answers[n] = {
                    "id": requests[n].get("id"),
                    "task": task,
                    "results": [
                        {k_: v for k_, v in vars(p).items() if v is not None} for p in ranked
                    ],
                }
    text = "".join(json.dumps(a, ensure_ascii=False) + "\n" for a in answers)
    atomic_write_bytes(Path(output_path), text.encode("utf-8"))
    return len(answers)
