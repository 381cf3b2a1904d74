# Asks for more memory than any worker has: 10 TiB.
job "huge" {
  group "huge" {
    task "main" {
      driver = "containerd"

      config {
        image   = "docker.io/hive/busybox:test"
        command = "sleep"
        args    = ["3600"]
      }

      resources {
        cpu    = 100
        memory = 10485760
      }
    }
  }
}
