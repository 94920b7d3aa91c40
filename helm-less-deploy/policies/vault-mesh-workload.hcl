path "pki_int/issue/mesh.{{identity.entity.aliases.auth_jwt_X.metadata.nomad_namespace}}.{{identity.entity.aliases.auth_jwt_X.metadata.nomad_job_id}}" {
  capabilities = ["update"]
}
path "pki_int/cert/ca_chain" {
  capabilities = ["read"]
}
