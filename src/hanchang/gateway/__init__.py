"""The multi-model gateway: registry, policy-aware router with fallback and limits, backends."""
