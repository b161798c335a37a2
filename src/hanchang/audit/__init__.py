"""Usage records now; the hash-chained audit trail joins them (issue 3)."""
