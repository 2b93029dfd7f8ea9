"""Exception types of sage-build.

Every error a person can cause or fix is one of these, with a message that
names the file, package or value and says what to do.  The command-line entry
points print the message without a traceback (``--debug`` or ``V=1`` shows it).
"""

from __future__ import annotations


class SageBuildError(Exception):
    """Base of all errors that are reported to the user as a plain message."""


class RecipeError(SageBuildError):
    """A recipe under build/pkgs is malformed or inconsistent."""


class ConfigureError(SageBuildError):
    """configure.py cannot produce a configuration (bad option, missing system package)."""


class FetchError(SageBuildError):
    """A tarball or wheel could not be downloaded from any source."""


class ChecksumError(FetchError):
    """A downloaded or cached file does not match the recipe's checksums."""


class UnpackError(SageBuildError):
    """An archive is corrupt or holds an entry that would escape the build directory."""


class BuildError(SageBuildError):
    """Building a package failed."""


class InstallError(SageBuildError):
    """Installing into the prefix failed or would overwrite another package's file."""


class UninstallError(SageBuildError):
    """Removing a package from the prefix failed or was refused."""


class CacheError(SageBuildError):
    """A binary cache cannot be reached, refuses a write, or holds an entry that is not to be trusted."""
