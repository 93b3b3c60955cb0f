"""Response bodies of the device API, for its OpenAPI (admin/openapi.py) and its tests."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Version(_Out):
    id: str = Field(examples=["v1"])
    status: str = Field(examples=["stable"])
    url: str = Field(examples=["/api/v1"])


class VersionsOut(_Out):
    versions: list[Version]


class FolderItem(_Out):
    id: str = Field(examples=["status"])
    description: str
    url: str = Field(examples=["/api/v1/status"])


class FolderOut(_Out):
    """A folder of the navigation tree (manual 004 section 5): its children."""

    items: list[FolderItem]


class StatusOut(_Out):
    """Manual 004 section 10's fields that mean something for a service, then sipbridge's own."""

    localTimeStamp: str = Field(description="Now, RFC 3339 with the local offset.")
    ipAddress: str = Field(description="The address this request reached.")
    productType: str = Field(examples=["sipbridge"])
    versionID: str = Field(examples=["0.1.0"])
    operationalState: str = Field(examples=["UNLOCKED"], description="UNLOCKED while serving.")
    systemUpTime: int = Field(ge=0, description="Seconds since worker 0 started.")
    phonesRegistered: int = Field(ge=0)
    callsTracked: int = Field(ge=0)
    commandsInFlight: int = Field(ge=0, description="On the wire and queued, all workers.")
    workers: int = Field(ge=1, description="Workers configured.")
    workersAlive: int = Field(ge=0, description="Workers with a heartbeat under 15 s old.")
    sipListener: str | None = Field(description="Worker 0's SIP listener, host:port.")
    sipUserAgents: list[str] = Field(description="Each worker's user agent contact.")
