"""Item embeddings (paper 3.2.1): semantic (text encoder) and collaborative (SASRec)."""
