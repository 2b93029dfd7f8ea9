"""Signatures of binary-cache manifests (#20 item 4): ed25519 through ``cryptography``.

Keys are written as Nix writes its binary-cache keys: ``NAME:BASE64``, the secret key (the 32-byte
seed) in a file of its own, the public key (32 bytes) wherever a client lists the keys it trusts.
The name says whose key it is and lets a manifest say which key signed it. A manifest's signature
covers its canonical JSON (``cache.key.canonical_json``), which names the key, the package, every
artifact's sha256 and size: an artifact that does not match is refused although signed.

``cryptography`` is imported only here, only when something is signed or verified: a tree that
uses no cache, or only its own unsigned directory, needs nothing more.
"""

from __future__ import annotations

import base64
import binascii
import re

from sage_build.base.errors import CacheError

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def _ed25519():
    try:
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives.asymmetric import ed25519
    except ImportError:
        raise CacheError("signing and checking binary-cache entries needs the Python package 'cryptography',"
                         " which is not installed: install it into sage-build's tool environment"
                         " (.venv/bin/pip install cryptography), or use an unsigned cache of your own with"
                         " SAGE_BINARY_CACHE_TRUST=unsigned") from None
    return ed25519, InvalidSignature


def generate_key(name: str) -> tuple[str, str]:
    """A new key pair: (secret ``NAME:BASE64``, public ``NAME:BASE64``)."""
    if not _NAME.match(name):
        raise CacheError(f"key name {name!r}: use letters, digits, '.', '_' and '-' (e.g. cache.example.org-1)")
    ed25519, _ = _ed25519()
    from cryptography.hazmat.primitives import serialization

    secret = ed25519.Ed25519PrivateKey.generate()
    seed = secret.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                serialization.NoEncryption())
    public = secret.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return f"{name}:{base64.b64encode(seed).decode()}", f"{name}:{base64.b64encode(public).decode()}"


def parse_key(text: str, what: str) -> tuple[str, bytes]:
    """``NAME:BASE64`` of 32 bytes -> (name, bytes); ``what`` names where it came from, for the error."""
    name, colon, encoded = text.strip().partition(":")
    try:
        raw = base64.b64decode(encoded, validate=True) if colon else b""
    except (binascii.Error, ValueError):
        raw = b""
    if not _NAME.match(name) or len(raw) != 32:
        raise CacheError(f"{what}: not a key of the form NAME:BASE64 (32 bytes), as ./sage --cache keygen writes")
    return name, raw


def sign(data: bytes, secret: str) -> dict[str, str]:
    """The signature of ``data`` with a secret key ``NAME:BASE64``: ``{"key": NAME, "sig": BASE64}``."""
    ed25519, _ = _ed25519()
    name, seed = parse_key(secret, "the signing key (SAGE_BINARY_CACHE_SIGNING_KEY)")
    signature = ed25519.Ed25519PrivateKey.from_private_bytes(seed).sign(data)
    return {"key": name, "sig": base64.b64encode(signature).decode()}


def verify(data: bytes, signatures: object, trusted: list[str], where: str) -> str:
    """The name of the trusted key whose valid signature of ``data`` is among ``signatures``;
    CacheError (saying why) when there is none: unsigned, signed by unknown keys only, or a bad
    signature. ``where`` names the entry."""
    if not isinstance(signatures, list) or not signatures:
        raise CacheError(f"{where} is not signed; trust an unsigned cache of your own with"
                         " SAGE_BINARY_CACHE_TRUST=unsigned")
    ed25519, invalid = _ed25519()
    keys = dict(parse_key(text, "a trusted key (SAGE_BINARY_CACHE_TRUSTED_KEYS)") for text in trusted)
    names = []
    for signature in signatures:
        if not isinstance(signature, dict):
            continue
        name, encoded = str(signature.get("key", "")), signature.get("sig", "")
        names.append(name)
        if name not in keys:
            continue
        try:
            ed25519.Ed25519PublicKey.from_public_bytes(keys[name]).verify(base64.b64decode(encoded, validate=True), data)
            return name
        except (invalid, binascii.Error, ValueError, TypeError):
            raise CacheError(f"{where}: the signature by {name!r} does not match its content") from None
    if not keys:
        raise CacheError(f"{where} is signed by {', '.join(map(repr, names))}, but no key is trusted: list the"
                         " public keys you trust in SAGE_BINARY_CACHE_TRUSTED_KEYS")
    raise CacheError(f"{where} is signed by {', '.join(map(repr, names)) or 'nobody'}, a key not trusted here"
                     f" (trusted: {', '.join(sorted(keys))})")
