"""Geolocation of images: galleries of location embeddings, top-K candidates, refinement and probability maps."""
