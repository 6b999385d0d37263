"""Registries keyed by artifact file suffix (spec readers, payload digests, runners)."""

from __future__ import annotations

from typing import Callable, TypeVar

T = TypeVar("T")


def suffix_registry(table: dict[str, T]) -> Callable[..., Callable[[T], T]]:
    """A decorator factory: ``@register(".onnx", ...)`` puts the decorated object in ``table``."""

    def register(*suffixes: str) -> Callable[[T], T]:
        def add(entry: T) -> T:
            for suffix in suffixes:
                table[suffix] = entry
            return entry

        return add

    return register
