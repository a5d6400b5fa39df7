"""The resource types the emulator serves, as discovery and the handlers both see them."""

from __future__ import annotations

import kmock
from pydantic import BaseModel


class ResourceType(BaseModel):
    """One served resource type, as discovery describes it."""

    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool = True
    subresources: tuple[str, ...] = ()

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def ref(self) -> kmock.resource:
        return kmock.resource(self.group, self.version, self.plural)

    def qualified(self) -> str:
        return f"{self.plural}.{self.group}" if self.group else self.plural
