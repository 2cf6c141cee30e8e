"""``HOST:PORT`` addresses of the HTTP endpoints, as CoreDNS writes them."""

from __future__ import annotations


def split_address(text: str, default_port: int) -> tuple[str | None, int]:
    """``":8080"`` -> (None, 8080): every interface; ``"127.0.0.1:0"``; ``"[::1]:8181"``; ``"localhost"``."""
    host, port = text, default_port
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = int(rest[1:]) if rest.startswith(":") else default_port
    elif ":" in text:
        host, _, port_text = text.rpartition(":")
        port = int(port_text)
    if not 0 <= port <= 65535:
        raise ValueError(f"{text!r}: port {port} is out of range")
    return (host or None), port
