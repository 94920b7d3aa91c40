"""The certificate reconciler: leaves that missed their renewal are restarted, then re-issued."""
