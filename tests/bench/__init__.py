"""`make bench`: ingestion and rollup throughput, printed as one JSON line (see ``run``)."""
