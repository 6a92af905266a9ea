"""Model families: each sub-package is one self-contained model (config, data, network,
training, a ranker for the evaluation). The registry that makes ``gensar train`` pick a
family by name is built separately (the model-families seam); until then a family is
used through its own ``train``/``load`` functions.
"""
