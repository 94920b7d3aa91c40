"""The controller's own HTTP surface: /healthz, /readyz, /metrics, /status."""
