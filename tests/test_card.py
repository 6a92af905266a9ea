"""The model card is typed, written and read by one class; serving reads what training wrote."""

from __future__ import annotations

import json

import pytest

from gensar.card import HistoryWindow, ModelCard
from gensar.data import load_dataset
from gensar.errors import GensarError
from gensar.families.gensar.directory import GenSARCard


def test_training_writes_the_card_serving_reads(tiny_run, tiny_dataset, tmp_path):
    from gensar.families.registry import load_model
    from gensar.serving.app import _window
    from gensar.serving.config import ServeConfig
    from gensar.serving.service import card_of

    dataset = load_dataset(tiny_dataset)
    card = GenSARCard.read(tiny_run / "model")
    assert card.family == "gensar" and card.checksums and card.tasks and card.model
    assert card.dataset.content_hash == dataset.manifest["content_hash"]
    window = HistoryWindow.of(dataset)
    assert window is not None and card.history_window == window
    assert card.training["examples_seen"] > 0
    # one class writes and reads it
    card.write(tmp_path)
    assert GenSARCard.read(tmp_path) == card
    # serving's window comes from the card when no dataset is given
    model = load_model(tiny_run / "model")
    assert isinstance(card_of(model), ModelCard)
    assert _window(ServeConfig(), None, card_of(model)) == (
        window.max_rec_history,
        window.max_search_sessions,
    )


def test_a_wrong_card_field_is_one_line(tmp_path):
    (tmp_path / "gensar.json").write_text(json.dumps({"tasks": [], "model": {}}))
    with pytest.raises(GensarError) as err:
        GenSARCard.read(tmp_path)
    assert "'tasks'" in str(err.value) and "\n" not in str(err.value)
