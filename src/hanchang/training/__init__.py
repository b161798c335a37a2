"""The training room: fine-tuning on an agency's data (the model lifecycle's training half).

- `datasets`: chat-format examples, versioned per agency, pseudonymised, split, graded, sealed.
- `sources`: examples from the window's reviewed answers, or generated from a collection.
- `jobs`: fine-tuning jobs in OpenAI's shape, queued in the database.
- `runner` / `job_process`: the worker that runs each job in its own process; `trainer` is the
  PEFT/TRL run there (PyTorch only ever loads in that process) and `gguf_files` writes the adapter.
- `models`: the models jobs make, served to their owner after the eval gate, rolled back at once.
"""
