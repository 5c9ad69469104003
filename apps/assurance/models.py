"""Revenue assurance: leakage findings and the scans that record them."""
