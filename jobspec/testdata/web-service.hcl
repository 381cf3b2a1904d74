# A web service rolled out with canaries, spread across datacenters and
# racks, preferring newer kernels.
job "web" {
  namespace   = "frontend"
  datacenters = ["us-east-1a", "us-east-1b"]
  node_pool   = "edge"
  priority    = 70

  meta {
    team  = "web"
    owner = "platform@example.com"
  }

  # What network policies select the allocations by; a group's labels add
  # to (and win over) the job's.
  labels = {
    app               = "web"
    tier              = "edge"
    "example.com/pci" = "false"
  }

  constraint {
    attribute = "${attr.kernel.name}"
    value     = "linux"
  }

  constraint {
    attribute = "${attr.cpu.arch}"
    operator  = "regexp"
    value     = "^(amd64|arm64)$"
  }

  update {
    max_parallel     = 2
    min_healthy_time = "30s"
    healthy_deadline = "10m"
    auto_revert      = true
    canary           = 1
    auto_promote     = true
  }

  spread {
    attribute = "${node.datacenter}"
    weight    = 100

    target "us-east-1a" {
      percent = 60
    }

    target "us-east-1b" {
      percent = 40
    }
  }

  group "frontend" {
    count = 6

    labels {
      tier = "frontend"
    }

    constraint {
      distinct_hosts = true
    }

    affinity {
      attribute = "${attr.kernel.version}"
      operator  = "version"
      value     = ">= 6.1"
      weight    = 60
    }

    affinity {
      attribute = "${meta.rack}"
      operator  = "!="
      value     = "r13"
      weight    = -30
    }

    spread {
      attribute = "${meta.rack}"
    }

    update {
      max_parallel = 3
    }

    network {
      mode = "bridge"

      port "http" {
        to = 8080
      }
    }

    task "app" {
      driver = "containerd"
      user   = "10001:10001"

      config {
        image      = "ghcr.io/example/web:1.4.2"
        entrypoint = ["/usr/local/bin/web"]
        args       = ["--listen", ":8080", "--node", "${node.unique.name}"]
        ports      = ["http"]
      }

      env {
        LOG_LEVEL = "info"
        PORT      = 8080
        NODE_ID   = "${node.unique.id}"
      }

      security {
        read_only_rootfs = true
        cap_drop         = ["ALL"]
        cap_add          = ["NET_BIND_SERVICE"]
      }

      resources {
        cpu    = 250
        memory = 128
      }
    }

    task "log-shipper" {
      driver = "containerd"

      config {
        image   = "docker.io/fluent/fluent-bit:3.0"
        command = "/fluent-bit/bin/fluent-bit"
        args    = ["-i", "cpu", "-o", "stdout"]
      }

      restart {
        attempts = 5
        mode     = "delay"
      }

      resources {
        cpu    = 50
        memory = 64
      }
    }
  }
}
