"""Which packages a binary cache has: the plan's "cached or not", asked of the stores once per
package key, several at a time (an HTTP or S3 cache answers a few hundred questions in seconds,
not minutes)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Mapping, Sequence

from sage_build.cache.store import has_key

#: Questions in flight at once: a store's latency, not the CPU, bounds a plan's time.
WORKERS = 16


def cached_packages(keys: Mapping[str, str | Sequence[str]], urls: Sequence[str], *,
                    exists: Callable[[str, str], bool] = has_key) -> set[str]:
    """The packages of ``keys`` (name -> key, or the keys its entry may have: a staged package's
    key and prefix key, cache.key.PackageKey.candidates) that one of the caches at ``urls`` has an
    entry for. A cache that cannot be reached raises CacheError (the message names it)."""
    if not urls or not keys:
        return set()
    names = sorted(keys)

    def found(name: str) -> bool:
        candidates = [keys[name]] if isinstance(keys[name], str) else keys[name]
        return any(exists(url, key) for url in urls for key in candidates)

    with ThreadPoolExecutor(max_workers=min(WORKERS, len(names))) as pool:
        return {name for name, hit in zip(names, pool.map(found, names)) if hit}
