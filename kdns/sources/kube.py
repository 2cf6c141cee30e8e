"""The Kubernetes API through the official client: connection set-up, raw list/watch calls, and the
paged lists of the one-off commands (``list_items``).

This is the only module that imports ``kubernetes``. Calls are made with ``_preload_content=False`` and
the JSON is read as it comes: the client's model deserialisation costs far more than the DNS needs.
"""

from __future__ import annotations

import json
import os
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import kubernetes.client
import kubernetes.config
import urllib3
import yaml
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

from kdns.sources.connection import IN_CLUSTER_VARIABLES, ConnectionSettingsError


@dataclass(frozen=True, slots=True)
class Connection:
    """Where the cluster is: a kubeconfig file (and context), the pod's service account, or an API
    server's URL with the client certificate and the CA of a Corefile's ``tls``."""

    kubeconfig: Path | None = None
    context: str | None = None
    in_cluster: bool = False
    endpoint: str | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_ca: Path | None = None

    def describe(self) -> str:
        if self.endpoint is not None:
            return f"the API server at {self.endpoint}"
        if self.in_cluster:
            host, port = (os.environ.get(name, "?") for name in IN_CLUSTER_VARIABLES)
            return f"in-cluster API at {host}:{port}"
        where = str(self.kubeconfig) if self.kubeconfig else "the default kubeconfig"
        return f"{where}" + (f" (context {self.context})" if self.context else "")

    def client(self) -> kubernetes.client.ApiClient:
        """An API client; raises ``ConnectionSettingsError`` naming the file or variable at fault.

        urllib3's own retries are turned off: they would sleep through a 429's Retry-After unseen,
        and the reflector does its own backoff."""
        configuration = kubernetes.client.Configuration()
        try:
            if self.endpoint is not None:
                self._configure_endpoint(configuration)
            elif self.in_cluster:
                kubernetes.config.load_incluster_config(client_configuration=configuration)
            else:
                kubernetes.config.load_kube_config(
                    config_file=str(self.kubeconfig) if self.kubeconfig else None,
                    context=self.context,
                    client_configuration=configuration,
                    persist_config=False,
                )
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" at line {mark.line + 1}" if mark is not None else ""
            problem = getattr(exc, "problem", None) or exc
            raise ConnectionSettingsError(f"{self.describe()}: invalid YAML{where}: {problem}") from None
        except (ConfigException, OSError, ValueError, TypeError) as exc:
            raise ConnectionSettingsError(f"{self.describe()}: {exc}") from None
        configuration.retries = False
        return kubernetes.client.ApiClient(configuration)

    def _configure_endpoint(self, configuration: kubernetes.client.Configuration) -> None:
        """``endpoint``'s URL, the client certificate and key, and the CA that verifies the server
        (the system's roots without one); each file must be readable now, not at the first request."""
        for what, path in (("client certificate", self.tls_cert), ("key", self.tls_key), ("CA", self.tls_ca)):
            if path is not None and not os.access(path, os.R_OK):
                raise ConnectionSettingsError(f"{self.describe()}: the {what} {path} is not a readable file")
        try:  # a file that holds no certificate or key: say so now, naming the settings
            context = ssl.create_default_context(cafile=self.tls_ca)
            if self.tls_cert is not None:
                context.load_cert_chain(self.tls_cert, self.tls_key)
        except ssl.SSLError as exc:
            raise ConnectionSettingsError(
                f"{self.describe()}: the tls files cannot be used: {exc.reason or exc}"
            ) from None
        assert self.endpoint is not None
        configuration.host = self.endpoint.rstrip("/")
        configuration.verify_ssl = True
        configuration.cert_file = str(self.tls_cert) if self.tls_cert else None
        configuration.key_file = str(self.tls_key) if self.tls_key else None
        configuration.ssl_ca_cert = str(self.tls_ca) if self.tls_ca else None


@dataclass(frozen=True, slots=True)
class Resource:
    """One watched collection: its object kind and the client method that lists and watches it."""

    kind: str  # the kind of the items, e.g. "Service"
    plural: str  # for log lines, e.g. "services"
    method: Callable[[kubernetes.client.ApiClient], Callable[..., Any]]
    optional: str = ""  # the API of a custom resource that a cluster may not have (404 when missing)

    def call(self, api: kubernetes.client.ApiClient, **params: Any) -> Any:
        """The raw urllib3 response of a list (or, with ``watch=True``, watch) request."""
        return self.method(api)(_preload_content=False, **params)


NAMESPACES = Resource("Namespace", "namespaces", lambda api: kubernetes.client.CoreV1Api(api).list_namespace)
SERVICES = Resource(
    "Service", "services", lambda api: kubernetes.client.CoreV1Api(api).list_service_for_all_namespaces
)
ENDPOINT_SLICES = Resource(
    "EndpointSlice",
    "endpointslices",
    lambda api: kubernetes.client.DiscoveryV1Api(api).list_endpoint_slice_for_all_namespaces,
)
PODS = Resource("Pod", "pods", lambda api: kubernetes.client.CoreV1Api(api).list_pod_for_all_namespaces)
MULTICLUSTER_GROUP, MULTICLUSTER_VERSION = "multicluster.x-k8s.io", "v1alpha1"
SERVICE_IMPORTS = Resource(
    "ServiceImport",
    "serviceimports",
    lambda api: partial(
        kubernetes.client.CustomObjectsApi(api).list_cluster_custom_object,
        MULTICLUSTER_GROUP,
        MULTICLUSTER_VERSION,
        "serviceimports",
    ),
    optional=f"{MULTICLUSTER_GROUP}/{MULTICLUSTER_VERSION}",
)


def api_error_text(exc: BaseException) -> str:
    """A one-line account of a failed API call: the status and the server's message, or the I/O error."""
    if isinstance(exc, ApiException):
        message = ""
        if exc.body:
            try:
                message = json.loads(exc.body).get("message", "")
            except (ValueError, AttributeError):
                message = str(exc.body)[:200]
        text = f"HTTP {exc.status} {exc.reason or ''}".strip()
        return f"{text}: {message}" if message else text
    reason = getattr(exc, "reason", None)
    return f"{type(exc).__name__}: {reason or exc}"


def retry_after(exc: BaseException) -> float | None:
    """The Retry-After seconds of a 429 or 503, when the server gave one."""
    headers = getattr(exc, "headers", None)
    value = headers.get("Retry-After") if headers else None
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def status_code(exc: BaseException) -> int | None:
    return exc.status if isinstance(exc, ApiException) else None


class ApiCallError(Exception):
    """A request to the API failed; the message is ``api_error_text``'s account of it."""


MAX_PAGES = 10_000  # a bound on continue tokens followed by one ``list_items``
# The collections the one-off commands read: kind -> the client method that lists it in a namespace
# (or, for services, in all of them).
_LISTS: dict[str, Callable[[kubernetes.client.ApiClient], Callable[..., Any]]] = {
    "services": SERVICES.method,
    "pods": lambda api: kubernetes.client.CoreV1Api(api).list_namespaced_pod,
    "endpointslices": lambda api: kubernetes.client.DiscoveryV1Api(api).list_namespaced_endpoint_slice,
    "poddisruptionbudgets": lambda api: (
        kubernetes.client.PolicyV1Api(api).list_namespaced_pod_disruption_budget
    ),
    "deployments": lambda api: kubernetes.client.AppsV1Api(api).list_namespaced_deployment,
}


def list_items(
    api: kubernetes.client.ApiClient, kind: str, namespace: str | None = None, **query: str
) -> list[dict[str, Any]]:
    """Every ``kind`` (one of ``_LISTS``) of ``namespace``, page by page, as the API's JSON (``query``:
    e.g. ``label_selector``). Raises ``ApiCallError`` naming the kind when the API refuses or cannot be
    reached."""
    method = _LISTS[kind](api)
    where = () if namespace is None else (namespace,)
    items: list[dict[str, Any]] = []
    token = None
    for _ in range(MAX_PAGES):
        try:
            response = method(
                *where, limit=500, _continue=token, _preload_content=False, _request_timeout=30, **query
            )
            body = json.loads(response.data)
        except (ApiException, urllib3.exceptions.HTTPError, OSError, ValueError) as exc:
            raise ApiCallError(f"listing {kind}: {api_error_text(exc)}") from None
        items += body.get("items") or []
        token = (body.get("metadata") or {}).get("continue") or None
        if not token:
            return items
    raise ApiCallError(f"listing {kind}: more than {MAX_PAGES} pages")
