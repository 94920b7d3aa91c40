path "pki_int/issue/mesh" {
  capabilities = ["update"]
}
path "pki_int/cert/ca_chain" {
  capabilities = ["read"]
}
