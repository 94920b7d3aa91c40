"""Benchmarks (`make bench`, `make bench-quick`): control-plane convergence against a bare
client's ceiling, and the rendered sidecar's data-plane overhead against plaintext and peers."""
