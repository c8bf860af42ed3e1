"""API keys: stored as sha256 hashes, compared in constant time, each with scopes."""

from __future__ import annotations

import hashlib
import hmac

from serving.http.settings import ApiKey

__all__ = ["authenticate", "hash_key"]


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def authenticate(presented: str | None, keys: list[ApiKey]) -> ApiKey | None:
    """The key whose hash matches `presented`, or None. Every stored hash is compared, with
    hmac.compare_digest, so the time taken does not depend on which key (if any) matched."""
    if presented is None:
        return None
    digest = hash_key(presented)
    found = None
    for key in keys:
        if hmac.compare_digest(digest, key.sha256):
            found = key
    return found
