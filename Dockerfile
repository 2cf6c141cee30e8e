# syntax=docker/dockerfile:1
#
# kdns container image. Build from the repository root:
#
#   docker build -t ghcr.io/kdns/kdns:0.1.0 .
#
# The image runs as the numeric user 65532, works with a read-only root filesystem and binds port 53
# with the single capability NET_BIND_SERVICE, which the Deployment in deploy/ grants.
#
# Both stages start from the same base image: the interpreter that gets the capability is copied
# from the builder into the runtime stage, and it must match the runtime's libpython.
# Bump the patch version (or pin a digest, python:3.11.x-slim-trixie@sha256:...) to take base image fixes.
ARG PYTHON_IMAGE=python:3.11.14-slim-trixie

FROM ${PYTHON_IMAGE} AS builder

SHELL ["/bin/bash", "-o", "pipefail", "-c"]

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1

# setcap comes from libcap2-bin. It is installed in this stage only: nothing from apt reaches the
# runtime image. Debian's archive keeps only the current version of a package, so an exact pin here
# would break the build at the next point release; hence DL3008 is ignored for this line.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends libcap2-bin \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /src
COPY pyproject.toml README.md ./
COPY kdns ./kdns
COPY zones /app/zones

# 1. A virtual environment with its own copy of the interpreter (--copies), so that the capability set
#    below applies to kdns's interpreter only, not to /usr/local/bin/python3.
# 2. pip builds the kdns wheel and installs it with its dependencies (pure Python or manylinux wheels:
#    no compiler is needed, in this stage or the next).
# 3. kubernetes.aio, the client's asyncio half (about 40 MB), is removed: kdns imports only
#    kubernetes.client and kubernetes.config (kdns/sources/kube.py); the grep stops the build if that changes.
# 4. kdns serves zones/example.yaml when it is given no cluster and no snapshot. It looks for it at
#    kdns.config.DEFAULT_SNAPSHOT, beside the installed package; a symbolic link points there from /app/zones.
# 5. Bytecode is compiled ahead of time (unchecked-hash: never revalidated against the sources), since
#    the root filesystem is read-only at run time.
# 6. The capability: cap_net_bind_service=+ep lets the non-root user bind port 53.
RUN python -m venv --copies --without-pip /app/venv \
    && python -m pip --python /app/venv/bin/python install --no-compile . \
    && if grep -rqE 'kubernetes[.]aio|from kubernetes import .*aio' /app/venv/lib/python3.11/site-packages/kdns; \
       then echo "kdns imports kubernetes.aio: keep it in the image" >&2; exit 1; fi \
    && rm -rf /app/venv/lib/python3.11/site-packages/kubernetes/aio \
    && ln -s /app/zones "$(/app/venv/bin/python -c 'import kdns.config as c; print(c.DEFAULT_SNAPSHOT.parent)')" \
    && /app/venv/bin/python -c 'import kdns.cli, kdns.config as c; assert c.DEFAULT_SNAPSHOT.is_file(), c.DEFAULT_SNAPSHOT' \
    && /app/venv/bin/python -m compileall -q -f -j 0 --invalidation-mode unchecked-hash /app/venv/lib \
    && setcap cap_net_bind_service=+ep /app/venv/bin/python \
    && getcap /app/venv/bin/python | grep -q cap_net_bind_service


FROM ${PYTHON_IMAGE}

LABEL org.opencontainers.image.title="kdns" \
      org.opencontainers.image.description="Kubernetes cluster DNS server" \
      org.opencontainers.image.licenses="Apache-2.0"

ENV PATH=/app/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1

# The base image ships the standard library without bytecode; compile it once here so that nothing
# is compiled (or written) at start-up. Parts kdns never imports are left out.
RUN /usr/local/bin/python3 -m compileall -q -j 0 --invalidation-mode unchecked-hash \
        -x '/(idlelib|tkinter|turtledemo|lib2to3|ensurepip|site-packages)/' /usr/local/lib/python3.11

# COPY keeps the security.capability extended attribute of /app/venv/bin/python.
COPY --from=builder /app /app

USER 65532:65532

# Fail the build, not the pod, if the capability did not survive: as this non-root user the
# interpreter must start (in secure-execution mode, as it will in the pod), import kdns and hold
# CAP_NET_BIND_SERVICE (bit 10) in its effective set.
RUN ["/app/venv/bin/python", "-c", "import kdns.cli; eff = [int(l.split()[1], 16) for l in open('/proc/self/status') if l.startswith('CapEff:')][0]; assert eff & 1 << 10, 'kdns interpreter lacks CAP_NET_BIND_SERVICE'"]

# DNS, liveness (health), readiness (ready) and Prometheus metrics, as the Corefile's health, ready and
# prometheus :9153 lines configure them.
EXPOSE 53/udp 53/tcp 8080 8181 9153

# Outside Kubernetes (docker run): the Corefile's health plugin answers on 8080. Kubernetes ignores
# this and uses the probes of deploy/deployment.yaml.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["python3", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/health', timeout=4)"]

ENTRYPOINT ["kdns"]
CMD ["serve", "--corefile", "/etc/coredns/Corefile"]
