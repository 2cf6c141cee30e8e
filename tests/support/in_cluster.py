"""kdns run as a pod runs it against a real API server: the manifests of deploy/ applied through the
official client, a ServiceAccount token from the TokenRequest API, the token, CA and namespace files
where kubelet mounts them, and ``KUBERNETES_SERVICE_HOST``/``KUBERNETES_SERVICE_PORT`` set.

The client's ``load_incluster_config`` reads fixed paths under /var/run, so kdns runs in a private user
and mount namespace (``unshare``) where a tmpfs over /var/run holds the files for it alone. The network
namespace stays the test's: kdns reaches the API server on 127.0.0.1 and the test reaches kdns there.
``unshare`` and ``sh`` each exec the next program, so the child's PID is kdns's: ``running`` stops it
by PID as it stops any kdns."""

from __future__ import annotations

import copy
import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

from kubernetes import client, utils

from tests.support.control_plane import ControlPlane
from tests.support.deploy import DEPLOY, Manifest, load_documents
from tests.support.process import Server, running

SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")  # where kubelet mounts it
CONFLICT = 409
TOKEN_SECONDS = 3600  # a projected token's default lifetime; the API's minimum is 600

# Run by ``sh`` in the new namespaces: $1 holds the files, $2 is where /var/run really is, then kdns.
_MOUNT_AND_EXEC = """set -e
mount -t tmpfs -o mode=0755 kubelet "$2"
mkdir -p "$2/secrets/kubernetes.io/serviceaccount"
cp "$1/token" "$1/ca.crt" "$1/namespace" "$2/secrets/kubernetes.io/serviceaccount/"
mount -o remount,ro "$2"
shift 2
exec "$@"
"""
# What ``running`` starts after the interpreter: exec unshare, which execs sh, which execs kdns.
_LAUNCH = (
    "import os, sys; script, files, run, *rest = sys.argv[1:]; "
    "os.execvp('unshare', ['unshare', '--user', '--map-root-user', '--mount', '--', 'sh', '-c', script, "
    "'sh', files, run, sys.executable, '-m', 'kdns', *rest])"
)


def shipped() -> tuple[Manifest, Manifest, Manifest]:
    """The ServiceAccount, ClusterRole and ClusterRoleBinding as deploy/ holds them."""
    (account,), (role,), (binding,) = (
        load_documents(DEPLOY / name)
        for name in ("serviceaccount.yaml", "clusterrole.yaml", "clusterrolebinding.yaml")
    )
    return account, role, binding


def service_account_dir_of(pid: int) -> Path:
    """``SERVICE_ACCOUNT_DIR`` as process ``pid`` sees it, read through its root (the link /var/run
    is followed here, as an absolute link is not followed inside /proc/PID/root)."""
    return Path(f"/proc/{pid}/root") / os.path.realpath(SERVICE_ACCOUNT_DIR).lstrip("/")


def apply(api: client.ApiClient, documents: Iterable[Manifest]) -> None:
    """Create each object as ``kubectl create`` does, as written; one that exists already is left as
    it is (a session's cluster is shared)."""
    for document in documents:
        try:
            utils.create_from_dict(api, document)
        except utils.FailToCreateError as error:
            if any(e.status != CONFLICT for e in error.api_exceptions):
                raise


def renamed_account(
    account: Manifest, role: Manifest, binding: Manifest, name: str
) -> tuple[Manifest, Manifest, Manifest]:
    """Copies of a ServiceAccount, ClusterRole and ClusterRoleBinding all called ``name``, the
    binding binding that role to that account."""
    account, role, binding = (copy.deepcopy(doc) for doc in (account, role, binding))
    for doc in (account, role, binding):
        doc["metadata"]["name"] = name
    binding["roleRef"]["name"] = name
    binding["subjects"] = [{**binding["subjects"][0], "name": name}]
    return account, role, binding


def grants(role: Manifest) -> list[tuple[str, str, str]]:
    """(API group, resource, verb) of every grant of ClusterRole ``role``."""
    return [
        (group, resource, verb)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    ]


def without_grant(role: Manifest, group: str, resource: str, verb: str) -> Manifest:
    """A copy of ClusterRole ``role`` granting everything it grants but ``verb`` on ``resource`` of
    API ``group``, one rule per grant."""
    kept = [grant for grant in grants(role) if grant != (group, resource, verb)]
    assert len(kept) == len(grants(role)) - 1, f"{role['metadata']['name']} grants no {verb} on {resource}"
    rules = [{"apiGroups": [g], "resources": [r], "verbs": [v]} for g, r, v in kept]
    return {**copy.deepcopy(role), "rules": rules}


def token_for(api: client.ApiClient, account: Manifest) -> str:
    """A token of ServiceAccount ``account`` from the TokenRequest API, as kubelet gets one for a pod."""
    request = client.AuthenticationV1TokenRequest(
        spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=TOKEN_SECONDS)
    )
    meta = account["metadata"]
    return (
        client.CoreV1Api(api)
        .create_namespaced_service_account_token(meta["name"], meta["namespace"], request)
        .status.token
    )


def pod_files(plane: ControlPlane, directory: Path, *, token: str, namespace: str) -> Path:
    """The three files kubelet mounts at ``SERVICE_ACCOUNT_DIR`` for a pod of ``namespace`` whose
    ServiceAccount token is ``token``, written in ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "token").write_text(token)
    (directory / "ca.crt").write_bytes(plane.ca_file.read_bytes())
    (directory / "namespace").write_text(namespace)
    return directory


def pod_files_of(plane: ControlPlane, api: client.ApiClient, account: Manifest, directory: Path) -> Path:
    """``pod_files`` for a pod of ServiceAccount ``account``, with a token made for it now."""
    namespace = account["metadata"]["namespace"]
    return pod_files(plane, directory, token=token_for(api, account), namespace=namespace)


@contextmanager
def running_in_pod(plane: ControlPlane, files: Path, *args: str) -> Iterator[Server]:
    """``kdns serve ARGS`` as in a pod given ``files`` (``pod_files``), ``--in-cluster`` unless ARGS
    hold a Corefile (which follows the in-cluster API by itself), with ``running``'s waits."""
    url = urlsplit(plane.url)
    env = {
        **os.environ,
        "KUBERNETES_SERVICE_HOST": str(url.hostname),
        "KUBERNETES_SERVICE_PORT": str(url.port),
    }
    run = os.path.realpath(SERVICE_ACCOUNT_DIR.parents[2])  # /var/run is a link to /run on most systems
    launcher = ("-c", _LAUNCH, _MOUNT_AND_EXEC, str(files), run)
    serve = args if "--corefile" in args else ("--in-cluster", *args)
    with running(*serve, launcher=launcher, env=env) as server:
        yield server
