"""What a build is told about binary caches: the one record the pipeline needs whether or not a
cache is used. The entries themselves (manifests, push, pull) are :mod:`sage_build.cache.entry`,
which a build loads only when it pulls or pushes."""

from __future__ import annotations

from typing import NamedTuple

MODES = ("auto", "only", "never")


class CacheSettings(NamedTuple):
    """What a build is told about binary caches (``face`` reads it from the environment)."""

    urls: tuple[str, ...] = ()        # SAGE_BINARY_CACHE: pulled from, first hit wins
    mode: str = "auto"                # SAGE_BINARY_CACHE_MODE: auto, only (a miss is an error), never
    push: str = ""                    # SAGE_BINARY_CACHE_PUSH: pushed to after each local build
    unsigned: bool = False            # SAGE_BINARY_CACHE_TRUST=unsigned: take unsigned entries
    trusted_keys: tuple[str, ...] = ()  # SAGE_BINARY_CACHE_TRUSTED_KEYS
    signing_key: str = ""             # the secret key (SAGE_BINARY_CACHE_SIGNING_KEY's file)

    def __repr__(self) -> str:  # the keys stay out of tracebacks and logs
        return (f"CacheSettings(urls={self.urls!r}, mode={self.mode!r}, push={self.push!r},"
                f" unsigned={self.unsigned!r})")

    @property
    def pulls(self) -> bool:
        return bool(self.urls) and self.mode != "never"

    @property
    def used(self) -> bool:
        return self.pulls or bool(self.push)
