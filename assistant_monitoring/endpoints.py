"""Where the LLM providers live, and how ``LLM_BASE_URL`` maps onto each SDK.

Users write ``LLM_BASE_URL`` either as a server root (``http://127.0.0.1:8089``) or
ending in ``/v1``. The Anthropic SDK wants the root (it appends ``/v1/messages``),
the OpenAI SDK wants ``.../v1`` (it appends ``/chat/completions``): normalise here,
once, for both the SDKs and the health check.
"""

from __future__ import annotations

DEFAULT_ROOTS = {"anthropic": "https://api.anthropic.com", "openai": "https://api.openai.com"}
ANTHROPIC_VERSION = "2023-06-01"


def server_root(provider: str, base_url: str | None) -> str:
    """The server root for ``provider``: ``LLM_BASE_URL`` without a trailing ``/v1``."""
    if not base_url:
        return DEFAULT_ROOTS[provider]
    root = base_url.rstrip("/")
    return root[: -len("/v1")] if root.endswith("/v1") else root


def server_address(provider: str, base_url: str | None) -> tuple[str, int]:
    """The host and port the provider's SDK talks to (``server.address``/``server.port``)."""
    from urllib.parse import urlsplit

    parts = urlsplit(server_root(provider, base_url))
    try:
        port = parts.port
    except ValueError:  # a port out of range: the SDK will say so when it connects
        port = None
    return parts.hostname or "", port or (443 if parts.scheme == "https" else 80)


def sdk_base_url(provider: str, base_url: str | None) -> str | None:
    """The ``base_url`` to hand the provider's SDK (None: the SDK's default)."""
    if not base_url:
        return None
    root = server_root(provider, base_url)
    return root if provider == "anthropic" else f"{root}/v1"


def models_url(provider: str, base_url: str | None) -> str:
    """``GET`` this to list models: authenticated, and it spends no tokens."""
    return f"{server_root(provider, base_url)}/v1/models"


def auth_headers(provider: str, api_key: str) -> dict[str, str]:
    """The authentication headers each API expects."""
    if provider == "anthropic":
        return {"x-api-key": api_key, "anthropic-version": ANTHROPIC_VERSION}
    return {"authorization": f"Bearer {api_key}"}


# Said wherever a rejection may come from URL userinfo (the health check, ask's error).
USERINFO_PROBLEM = (
    "LLM_BASE_URL holds a user name and password, which are sent as HTTP Basic auth "
    "in place of the API key: take them out of LLM_BASE_URL"
)


def has_userinfo(base_url: str | None) -> bool:
    """Whether ``LLM_BASE_URL`` carries ``user:password@`` (or a bare ``user@``)."""
    from urllib.parse import urlsplit

    return bool(base_url) and "@" in urlsplit(str(base_url)).netloc


def basic_auth(url: str) -> tuple[str, dict[str, str]]:
    """``url`` without its userinfo, and the ``Authorization`` header the SDKs make of it.

    httpx (under both SDKs) sends URL userinfo as HTTP Basic auth, and that header
    replaces the SDK's own key header; the standard library cannot parse userinfo at
    all (it took ``user:pass@host`` for a host name and failed in DNS). The health
    check asks the way the SDKs will, so it finds what ``ask`` would find.
    """
    import base64
    from urllib.parse import unquote, urlsplit, urlunsplit

    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url, {}
    userinfo, _, host = parts.netloc.rpartition("@")
    user, _, password = userinfo.partition(":")
    token = base64.b64encode(f"{unquote(user)}:{unquote(password)}".encode()).decode()
    bare = urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))
    return bare, {"authorization": f"Basic {token}"}
