"""Model families: each sub-package is one self-contained model (config, data, network,
training, a ranker for the evaluation, a served model). :mod:`gensar.families.registry`
names them, and the shared stages (pipeline, benchmark, evaluation, serving, predict)
reach a family only through it and the protocols in :mod:`gensar.families.protocols`.
"""
