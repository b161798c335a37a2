"""The embedded model's engine: a supervised child process speaking the OpenAI wire format.

`worker` and `runner` run inside that process (they import llama.cpp); `supervisor` runs in
the platform and never imports llama.cpp, so a native crash can only end the child.
"""
