"""Building components from JSON specs ``{"name": ..., **params}`` as stored in model cards."""

from __future__ import annotations

import inspect
from typing import Any, Callable


def build_from_spec(spec: dict, registry: dict[str, Callable[..., Any]], kind: str, *args: Any) -> Any:
    """``registry[spec["name"]](*args, **params)``; ValueError for an unknown name or unknown parameters."""
    if not isinstance(spec, dict) or spec.get("name") not in registry:
        name = spec.get("name") if isinstance(spec, dict) else spec
        raise ValueError(f"unknown {kind} {name!r}; known: {', '.join(registry)}")
    params = {k: v for k, v in spec.items() if k != "name"}
    factory = registry[spec["name"]]
    try:
        inspect.signature(factory).bind(*args, **params)
    except TypeError as err:
        raise ValueError(f"{kind} {spec['name']!r}: {err}") from err
    return factory(*args, **params)
