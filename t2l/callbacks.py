"""The callback types the library takes, each defined once here and imported where it is used."""

from collections.abc import Callable

Status = Callable[[str], None]  # a one-line message about a long step ("downloading SmolLM2-135M")
Warn = Callable[[str], None]  # a warning the caller may show or drop
Progress = Callable[[int, int], None]  # (done, total) of a counted step
Event = Callable[[str, object], None]  # (kind, payload) from a long run: a train run, a bench
