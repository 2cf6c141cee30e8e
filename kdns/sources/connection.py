"""Whether kdns runs in a pod, and the errors for unusable connection settings and an unreachable
API. Light on purpose: the ``kubernetes`` client (45 MB of models) is imported only when a cluster
is followed."""

from __future__ import annotations

import os

IN_CLUSTER_VARIABLES = ("KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT")


class ConnectionSettingsError(Exception):
    """The kubeconfig or the in-cluster environment cannot be used; the message says why."""


class ApiUnavailable(Exception):
    """The Kubernetes API could not be reached to list the cluster once; the message says how it failed."""


def in_cluster_available() -> bool:
    return all(os.environ.get(name) for name in IN_CLUSTER_VARIABLES)
