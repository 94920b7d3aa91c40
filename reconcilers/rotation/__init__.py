"""Intermediate CA rotation: a new issuer, re-issue in waves that respect each job, retire."""
