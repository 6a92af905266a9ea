"""One object owns the paths of a run directory: a built run has everything where it says."""

from __future__ import annotations

from gensar.layout import RunLayout


def test_a_built_run_matches_its_layout(tiny_run):
    layout = RunLayout(tiny_run)
    for stage in ("semantic", "collab", "index", "candidates"):
        assert layout.stage_output(stage).exists(), stage
    assert (layout.sasrec / "config.json").is_file()
    assert (layout.model / "gensar.json").is_file() and layout.training.is_dir()
    assert layout.stages_file.is_file()  # config.yaml is written by the CLI stages
    assert RunLayout.of_model(layout.model).store == layout.root.resolve() / "serving" / (
        "history.sqlite3"
    )


def test_shared_candidates_live_elsewhere(tmp_path):
    layout = RunLayout(tmp_path / "run", tmp_path / "bench")
    assert layout.candidates == tmp_path / "bench" / "candidates"
    assert layout.adoptable("collab") == tmp_path / "run" / "embeddings"
