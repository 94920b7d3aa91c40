"""The Vault adapter: PKI administration through hvac (run in threads, hvac is synchronous)."""
