"""`gensar predict` answers each request as if it came alone, whatever else is in its file."""

from __future__ import annotations

import json

from gensar.data import load_dataset
from gensar.predict import predict_file


def test_answers_do_not_depend_on_the_other_requests(tiny_run, tiny_dataset, tmp_path):
    dataset = load_dataset(tiny_dataset)
    items = dataset.item_ids
    query = next(iter(dataset.query_text.values()))
    history = [
        {"behaviour": "rec_item", "item_id": items[0]},
        {"behaviour": "search_query", "query": query},
        {"behaviour": "search_item", "item_id": items[1]},
    ]
    requests = [
        {
            "id": n,
            "task": task,
            "history": history,
            "k": k,
            **({"query": query} if task == "search" else {}),
        }
        for n, (task, k) in enumerate(
            [
                ("recommend", 1),
                ("recommend", 7),
                ("search", 2),
                ("search", 9),
                ("suggest_queries", 1),
                ("suggest_queries", 4),
                ("recommend", 3),
            ]
        )
    ]
    mixed_in, mixed_out = tmp_path / "mixed.jsonl", tmp_path / "mixed-answers.jsonl"
    mixed_in.write_text("".join(json.dumps(r) + "\n" for r in requests))
    assert predict_file(tiny_run / "model", mixed_in, mixed_out, batch_size=32) == len(requests)
    together = [json.loads(line) for line in mixed_out.read_text().splitlines()]
    for request, answer in zip(requests, together, strict=True):
        alone_in, alone_out = tmp_path / "one.jsonl", tmp_path / "one-answer.jsonl"
        alone_in.write_text(json.dumps(request) + "\n")
        predict_file(tiny_run / "model", alone_in, alone_out, overwrite=True)
        alone = json.loads(alone_out.read_text())
        assert answer == alone, request
        assert answer["id"] == request["id"] and len(answer["results"]) <= request["k"]
