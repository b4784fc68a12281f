"""Backends: where locks, limits and events live (``memory://`` by default, ``redis://``)."""

from .base import Backend, LockGrant

__all__ = ["Backend", "LockGrant"]
