"""The SQLite store of adapters, hypernetworks and their files. Never imports torch."""

from registry.errors import RegistryError
from registry.models import Adapter, Hypernet
from registry.store import Registry

__all__ = ["Adapter", "Hypernet", "Registry", "RegistryError"]
