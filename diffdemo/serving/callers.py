"""Who is calling: the caller's address as this deployment's trusted proxies report it (X-Forwarded-For read from
the right), which the caller cannot choose; every per-caller cap is keyed on it."""

from __future__ import annotations

import os

from diffdemo.serving.deployment import limits


def _header_values(headers, name: str) -> list[str]:
    if headers is None:
        return []
    if hasattr(headers, "getlist"):  # starlette's Headers: every X-Forwarded-For line, in order
        return list(headers.getlist(name))
    value = headers.get(name)
    return [value] if value else []


def client_address(headers, host: str | None, hops: int | None = None) -> str:
    """The caller's address as the trusted proxies report it, which the caller cannot choose.

    ``hops`` proxies sit in front of the app (DIFFDEMO_TRUSTED_PROXY_HOPS: 1 on a Hugging Face Space, 0 locally);
    each appends the address it was connected from to X-Forwarded-For, so the caller's address is the ``hops``-th
    entry from the right. Whatever a client writes itself sits further left and is ignored. With 0 hops (or a
    shorter chain than promised) it is the socket's own peer."""
    hops = limits().trusted_hops if hops is None else hops
    if hops > 0:
        chain = [h.strip() for v in _header_values(headers, "x-forwarded-for") for h in str(v).split(",")]
        chain = [h for h in chain if h]
        if len(chain) >= hops:
            return chain[-hops][:64]
    return (host or "unknown")[:64]


def request_address(request) -> str:
    """client_address of a FastAPI / gradio request (its headers and socket peer)."""
    request = getattr(request, "request", None) or request  # gr.Request wraps the FastAPI request
    host = getattr(getattr(request, "client", None), "host", None)
    return client_address(getattr(request, "headers", None), host)


def trust_only_our_hops() -> None:
    """Stop uvicorn from rewriting the socket's peer from X-Forwarded-For (by default it trusts 127.0.0.1): the
    address is read once, by client_address, with this deployment's number of trusted hops."""
    os.environ["FORWARDED_ALLOW_IPS"] = ""
