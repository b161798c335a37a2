"""What the two doors share: authentication, error mapping, JSON responses, parameter types.

`api` (the OpenAI-compatible API and `/api`) and `web` (the window) both import from here and
never from each other; `hanchang.server` puts them together.
"""
