"""한창 (Hanchang): a self-hosted common AI platform for the Korean public sector."""

__version__ = "0.1.0"
