"""Status records in Nomad Variables (CAS, write on change) and the drift report model."""
