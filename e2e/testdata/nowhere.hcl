# Constrained to a zone no worker is labelled with.
job "nowhere" {
  group "nowhere" {
    constraint {
      attribute = "${meta.zone}"
      value     = "atlantis"
    }

    task "main" {
      driver = "containerd"

      config {
        image   = "docker.io/hive/busybox:test"
        command = "sleep"
        args    = ["3600"]
      }

      resources {
        memory = 16
      }
    }
  }
}
