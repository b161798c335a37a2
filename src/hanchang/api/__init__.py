"""HTTP surface: /v1 (OpenAI-compatible), /api (platform), health."""
