"""Probes: small models trained on frozen location embeddings to predict a label, with honest validation."""
