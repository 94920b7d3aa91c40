# Liveness of Vault itself.
path "sys/health" {
  capabilities = ["read"]
}

# Its own token: look it up and renew it (also in Vault's default policy, which a
# Nomad workload identity role may leave out).
path "auth/token/lookup-self" {
  capabilities = ["read"]
}

path "auth/token/renew-self" {
  capabilities = ["update"]
}

# Root: read its certificate, sign a new intermediate during rotation.
path "pki/cert/ca" {
  capabilities = ["read"]
}

path "pki/issuers" {
  capabilities = ["list"]
}

path "pki/issuer/+" {
  capabilities = ["read"]
}

path "pki/root/sign-intermediate" {
  capabilities = ["update"]
}

# Intermediate: chain and issuers, default-issuer switch, new issuers, retirement.
path "pki_int/cert/ca_chain" {
  capabilities = ["read"]
}

path "pki_int/cert/ca" {
  capabilities = ["read"]
}

path "pki_int/issuers" {
  capabilities = ["list"]
}

path "pki_int/issuer/+" {
  capabilities = ["read", "update", "patch", "delete"]
}

path "pki_int/config/issuers" {
  capabilities = ["read", "update"]
}

path "pki_int/intermediate/generate/internal" {
  capabilities = ["update"]
}

path "pki_int/intermediate/set-signed" {
  capabilities = ["update"]
}

# Leaves already issued (serials, revocation state) and the role, read-only.
path "pki_int/certs" {
  capabilities = ["list"]
}

path "pki_int/cert/+" {
  capabilities = ["read"]
}

path "pki_int/roles/mesh" {
  capabilities = ["read"]
}

# Per-job roles (identity-bound leaves): kept in step with each meshed job's names,
# deleted when the job stops being meshed or is purged. Never the issue paths.
path "pki_int/roles/mesh.*" {
  capabilities = ["create", "read", "update", "delete"]
}

# Their names, listed once per resync interval: a role deleted out of band is granted
# again (controller.vault.grants).
path "pki_int/roles" {
  capabilities = ["list"]
}
