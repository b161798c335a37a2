"""Korean knowledge bases: parsing, chunking, Korean analysis, indexes, retrieval, versions."""
