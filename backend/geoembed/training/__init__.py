"""Contrastive training of location encoders against imagery (SatCLIP, GeoCLIP, CSP objectives)."""
