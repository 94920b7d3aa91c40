"""Status records in Nomad Variables (CAS, write on change); the drift model is ctl.drift."""
