"""``compare bench``: seconds per training epoch of each twin against the matrix-product floor
and against its library's plainest training loop, measured in one run."""
