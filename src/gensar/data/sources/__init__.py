"""Loaders: one module per raw source format, each returning a :class:`RawData`."""
