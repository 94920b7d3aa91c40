"""The helm-less deployment: the controller's own Nomad job, its ACL policies, and the install.

`controllerctl install` uses it to do through the APIs what helm-less-deploy/README.md does with
the `nomad`, `vault` and `consul` CLIs; helm-less-deploy/gen.py uses it to generate the job's
API JSON and the policy files from their single sources.
"""
