"""The TLS side of DNS over TLS to upstreams (RFC 7858), as CoreDNS's forward ``tls`` sets it up.

The server's certificate is always verified: against the CA file when one is given, else against
the system's roots; it must name ``tls_servername`` when that is set, else the upstream's IP address.
A certificate and key, when given, are the client's own, for servers that ask for one.
"""

from __future__ import annotations

import ssl

from kdns.config import ForwardSettings


def client_context(settings: ForwardSettings) -> ssl.SSLContext:
    """The context every ``tls://`` upstream of ``settings`` is reached with; ValueError naming the
    file that cannot be used."""
    ca = settings.tls_ca
    try:
        context = ssl.create_default_context(cafile=str(ca) if ca is not None else None)
    except (OSError, ssl.SSLError) as exc:
        raise ValueError(f"forward: tls: cannot use CA file {ca}: {_reason(exc)}") from None
    if settings.tls_cert is not None and settings.tls_key is not None:
        try:
            context.load_cert_chain(settings.tls_cert, settings.tls_key)
        except (OSError, ssl.SSLError) as exc:
            raise ValueError(
                f"forward: tls: cannot use certificate {settings.tls_cert} and key {settings.tls_key}: "
                f"{_reason(exc)}"
            ) from None
    return context


def _reason(exc: BaseException) -> str:
    return getattr(exc, "strerror", None) or getattr(exc, "reason", None) or str(exc)
