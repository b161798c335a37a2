"""Pure domain nouns and decisions. Imports nothing else of Hanchang and does no I/O."""
