"""gensar: unified generative search and recommendation.

The pipeline, one subpackage per stage::

    data -> embed -> ids -> tasks -> model -> decoding -> evaluation -> serving

Each stage reads the files the stage before wrote and writes its own into a run
directory, so any stage can be rerun alone and inspected.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
