"""sage-build: a Sage-style distribution build system for Python packages."""

__version__ = "0.1.0"
