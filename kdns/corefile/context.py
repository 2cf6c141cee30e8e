"""What loading a Corefile builds, directive by directive: one ``Draft`` per server block, and the
``Shared`` settings every block feeds (the cluster, the HTTP endpoints, reload). Each plugin's setup
module writes its directive into them; the loader turns them into ``ServeConfig``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from kdns.config import (
    COREFILE_LISTEN,
    AclSettings,
    CacheSettings,
    ChaosSettings,
    ExternalSettings,
    ForwardSettings,
    HostsSettings,
    KubeSettings,
    LogRule,
    LogSettings,
    OpsSettings,
    ServerSettings,
    TransferSettings,
    ZoneSettings,
)
from kdns.corefile.syntax import Token


@dataclass
class Cluster:
    """What a ``kubernetes`` directive says; every block that has one must say the same, as kdns
    follows one cluster."""

    zone: ZoneSettings
    kube: KubeSettings
    namespaces: tuple[str, ...] = ()
    labels: str | None = None


@dataclass
class Shared:
    """Settings of the whole server, whichever block writes them."""

    environ: Mapping[str, str]
    warnings: list[str] = field(default_factory=list)
    cluster: Cluster | None = None
    cluster_at: Token | None = None  # the kubernetes directive that set ``cluster``
    ops: OpsSettings = field(default_factory=OpsSettings)
    reload: float = 0.0

    def warn(self, token: Token, message: str) -> None:
        self.warnings.append(f"{token.where}: {message}")


@dataclass
class Draft:
    """One server block as its directives are read."""

    shared: Shared
    zones: tuple[str, ...]  # the block's key zones
    key: Token  # where the block starts
    kubernetes: bool = False
    pods_verified: bool = False
    rewrites: list[object] = field(default_factory=list)
    templates: list[object] = field(default_factory=list)
    listen: list[str] = field(default_factory=list)
    forward: list[ForwardSettings] = field(default_factory=list)
    last_next: Token | None = None  # the ``next`` of the last forward stanza so far (none after it)
    cache: CacheSettings | None = None
    hosts: HostsSettings | None = None
    external: ExternalSettings | None = None
    transfer: TransferSettings | None = None
    chaos: ChaosSettings | None = None
    acl: list[AclSettings] = field(default_factory=list)
    whoami: bool = False
    bufsize: int | None = None
    loadbalance: bool = False
    autopath: bool = False
    log_rules: list[LogRule] = field(default_factory=list)  # of every 'log' line, in order

    def warn(self, token: Token, message: str) -> None:
        self.shared.warn(token, message)

    def settings(self, zones: tuple[str, ...], port: int) -> ServerSettings:
        return ServerSettings(
            zones=zones,
            port=port,
            listen=tuple(dict.fromkeys(self.listen)) or COREFILE_LISTEN,
            kubernetes=self.kubernetes,
            rewrites=tuple(self.rewrites),
            templates=tuple(self.templates),
            forward=tuple(self.forward),
            cache=self.cache,
            hosts=self.hosts,
            external=self.external,
            transfer=self.transfer,
            chaos=self.chaos,
            acl=tuple(self.acl),
            whoami=self.whoami,
            bufsize=self.bufsize,
            loadbalance=self.loadbalance,
            autopath=self.autopath,
            log=LogSettings(tuple(self.log_rules)) if self.log_rules else None,
        )
