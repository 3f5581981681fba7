"""Files an object keeps in its ``folder``, each named once: ``acl = InFolder("acl")``."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol, overload


class _HasFolder(Protocol):
    @property
    def folder(self) -> Path: ...


class InFolder:
    """A file of the instance's folder: on an instance, ``instance.folder / name``."""

    def __init__(self, name: str) -> None:
        self.name = name

    @overload
    def __get__(self, instance: None, owner: type) -> InFolder: ...
    @overload
    def __get__(self, instance: _HasFolder, owner: type) -> Path: ...
    def __get__(self, instance: _HasFolder | None, owner: type) -> InFolder | Path:
        return self if instance is None else instance.folder / self.name
