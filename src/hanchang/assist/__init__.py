"""Work services as small pipelines over knowledge, gateway and guard."""
