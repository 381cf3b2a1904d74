# Constraint and affinity spellings found in Nomad job files: operator
# aliases, index syntax, escaped and task-level constraints.
job "edge-proxy" {
  datacenters = ["*"]

  constraint {
    attribute = "${attr.os.name}"
    operator  = "=="
    value     = "debian"
  }

  constraint {
    attribute = meta["zone.name"]
    operator  = "is"
    value     = "dmz"
  }

  constraint {
    attribute = "${attr.unique.hostname}"
    operator  = "not"
    value     = "edge-7"
  }

  constraint {
    operator = "distinct_hosts"
    value    = "true"
  }

  constraint {
    attribute = "${meta.features}"
    operator  = "set_contains_all"
    value     = "wireguard,nftables"
  }

  constraint {
    attribute = "$${literal}"
    value     = "1"
  }

  group "proxy" {
    count = 3

    constraint {
      distinct_hosts = false
    }

    update {
      max_parallel      = 1
      health_check      = "task_states"
      progress_deadline = "15m"
    }

    task "envoy" {
      driver = "docker"

      constraint {
        attribute = "${attr.kernel.version}"
        operator  = "semver"
        value     = ">= 5.10"
      }

      affinity {
        attribute = "${node.class}"
        value     = "edge"
      }

      config {
        image      = "envoyproxy/envoy:v1.30-latest"
        entrypoint = ["envoy"]
        args       = ["-c", "/etc/envoy/envoy.yaml", "--service-node", "${node.unique.id}"]
      }

      resources {
        memory = 4
      }
    }
  }
}
