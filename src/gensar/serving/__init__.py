"""The HTTP service: FastAPI app, live history store, micro-batching, demo page.

``create_app(model_dir, dataset_dir, config)`` builds the app and
``serve(model_dir, dataset_dir, config)`` runs it (``gensar serve``).
"""

from gensar.serving.app import create_app, serve
from gensar.serving.config import ServeConfig

__all__ = ["ServeConfig", "create_app", "serve"]
