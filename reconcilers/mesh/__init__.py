"""The mesh reconciler: inject or remove the sidecar, fenced by EnforceIndex, and record it."""
