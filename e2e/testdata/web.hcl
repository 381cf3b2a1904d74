# The e2e rolling-update job: 3 busybox tasks as user 1000, spread over the
# workers' zone labels, updated one at a time once each is healthy for 2s.
variable "image" {
  type    = string
  default = "docker.io/hive/busybox:test"
}

variable "release" {
  type    = string
  default = "1"
}

job "web" {
  type = "service"

  update {
    max_parallel     = 1
    min_healthy_time = "2s"
    healthy_deadline = "1m"
  }

  group "web" {
    count = 3

    spread {
      attribute = "${meta.zone}"
    }

    task "main" {
      driver = "containerd"
      user   = "1000"

      config {
        image   = var.image
        command = "sh"
        args    = ["-c", "trap \"exit 0\" TERM; while true; do echo up; sleep 1; done"]
      }

      env {
        RELEASE = var.release
      }

      resources {
        cpu    = 100
        memory = 32
      }
    }
  }
}
