"""Item identifiers (paper 3.2): residual k-means or the joint RQ-VAE, collision handling,
diagnostics of what the codes mean, and ``ItemIdentifiers``.

Entry point: :func:`build_identifiers` (``gensar index``); reader:
:class:`ItemIdentifiers` (``ItemIdentifiers.load(run_dir)``); report:
``gensar index-report RUN``.
"""

from gensar.ids.build import build_identifiers
from gensar.ids.config import IndexConfig
from gensar.ids.identifiers import ItemIdentifiers

__all__ = ["IndexConfig", "ItemIdentifiers", "build_identifiers"]
