# The nomad-tls-mesh controller as a Nomad SYSTEM job: one instance per eligible node, and the
# Variables lock `mesh-controller/leader` picks the one that works; the others are hot standbys
# that answer /healthz, /readyz, /metrics and /status.
#
# Run it:      nomad job run -var driver=raw_exec helm-less-deploy/mesh-controller.nomad.hcl
# API JSON:    mesh-controller.nomad.json is generated from this file by gen.py (defaults).
#
# No token or address of the cluster is written here. Everything that differs per cluster
# comes from the Nomad Variable nomad/jobs/mesh-controller (in the job's namespace), which
# only this job can read through its workload identity; see README.md.

variable "driver" {
  type        = string
  default     = "docker"
  description = "Task driver: docker (runs var.image) or raw_exec (runs var.command on the node)."
}

variable "image" {
  type        = string
  default     = "nomad-tls-mesh"
  description = "Container image (docker driver); the tag is var.version."
}

variable "command" {
  type        = string
  default     = "/usr/local/bin/controller"
  description = "Path of the `controller` executable on every node (raw_exec driver)."
}

variable "version" {
  type        = string
  default     = "0.1.0"
  description = "Controller version: the image tag and the job's meta.version."
}

variable "datacenters" {
  type        = list(string)
  default     = ["*"]
  description = "Datacenters to run in (\"*\" = all)."
}

variable "namespace" {
  type        = string
  default     = "default"
  description = "Namespace of the job, of its Variable and of the controller's own Variables."
}

variable "node_pool" {
  type        = string
  default     = "default"
  description = "Node pool to run in."
}

variable "service_provider" {
  type        = string
  default     = "consul"
  description = "Where the /healthz and /readyz checks run: consul or nomad."
}

job "mesh-controller" {
  type        = "system"
  datacenters = var.datacenters
  namespace   = var.namespace
  node_pool   = var.node_pool
  priority    = 80

  meta {
    version = var.version
  }

  # One node at a time: Nomad 1.10 replaces max_parallel nodes per stagger (no health gate);
  # 1.11+ deploys system jobs and waits for the checks to pass for min_healthy_time first.
  # Replacing the leader's node costs one failover: it releases the lock on SIGTERM and a
  # standby takes it within its 2 s retry (`controllerctl install` reports it).
  update {
    max_parallel     = 1
    health_check     = "checks"
    min_healthy_time = "10s"
    healthy_deadline = "3m"
    stagger          = "10s"
  }

  group "controller" {
    network {
      port "http" {}
    }

    # `controller run` exits 1 when it loses leadership or a part of it fails: restart it
    # promptly, but give up on a crash loop so the deployment shows it.
    restart {
      attempts = 5
      interval = "5m"
      delay    = "10s"
      mode     = "delay"
    }

    service {
      name     = "mesh-controller"
      port     = "http"
      provider = var.service_provider
      tags     = ["mesh-controller", "metrics"]

      # Liveness: the event loop turns and, on the leader, the event stream is alive. Three
      # failures in a row restart the task (a stuck leader gives the lock up that way).
      check {
        name     = "healthz"
        type     = "http"
        path     = "/healthz"
        interval = "10s"
        timeout  = "2s"

        check_restart {
          limit = 3
          grace = "30s"
        }
      }

      # Readiness: standbys are ready; a leader once its first full LIST is done.
      check {
        name     = "readyz"
        type     = "http"
        path     = "/readyz"
        interval = "10s"
        timeout  = "2s"
      }
    }

    task "controller" {
      driver = var.driver

      config {
        image        = var.driver == "docker" ? "${var.image}:${var.version}" : null
        network_mode = var.driver == "docker" ? "host" : null
        command      = var.driver == "raw_exec" ? var.command : null
        args         = ["run"]
      }

      # MESH_HTTP_ADDR is the node address and port Nomad allocated, not 0.0.0.0: Consul (or
      # Nomad) must reach /healthz and /readyz there. That is a non-loopback address, which
      # the controller refuses unless MESH_HTTP_ALLOW_PUBLIC=true; the endpoints only read and
      # never show secrets, and the port is the one this allocation owns.
      env {
        MESH_HTTP_ADDR         = "${NOMAD_ADDR_http}"
        MESH_HTTP_ALLOW_PUBLIC = "true"
        MESH_LOG_FORMAT        = "json"
        VAULT_TOKEN_FILE       = "${NOMAD_SECRETS_DIR}/vault_token"
      }

      # The controller's own Vault access: Nomad logs in with this task's workload identity at
      # the JWT auth role mesh-controller (`controllerctl install` writes it), renews the token
      # and logs in again when renewal fails, rewriting secrets/vault_token. The controller
      # re-reads that file when it changes (VAULT_TOKEN_FILE, which wins over VAULT_TOKEN), so
      # a new token needs no restart (noop), and no VAULT_TOKEN env that would go stale.
      vault {
        role        = "mesh-controller"
        change_mode = "noop"
        env         = false
      }

      # Tokens and addresses: every item of the Variable nomad/jobs/mesh-controller becomes an
      # environment variable (NOMAD_ADDR, NOMAD_TOKEN, VAULT_ADDR — no Vault token: see vault —,
      # CONSUL_HTTP_ADDR, CONSUL_HTTP_TOKEN, and any MESH_* setting). The task's workload
      # identity may read nomad/jobs/<job ID> without any ACL policy. A changed Variable
      # restarts the task with the new values.
      template {
        data        = <<-EOT
        {{ with nomadVar "nomad/jobs/mesh-controller" }}{{ range .Tuples }}{{ .K }}={{ .V }}
        {{ end }}{{ end }}
        EOT
        destination = "secrets/controller.env"
        env         = true
        change_mode = "restart"
        perms       = "0600"
      }

      # MESH_DRAIN_TIMEOUT (30 s) for in-flight work, then the lock release.
      kill_timeout = "45s"

      resources {
        cpu        = 200
        memory     = 256
        memory_max = 512
      }

      logs {
        max_files     = 5
        max_file_size = 20
      }
    }
  }
}
