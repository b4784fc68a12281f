"""The framework-agnostic core: locks, limits, events and ``coordinate`` on a backend."""
