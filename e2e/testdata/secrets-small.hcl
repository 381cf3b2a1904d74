# An environment secret in a task with a small memory limit, as busybox
# needs: the hive secret-exec wrapper that sets the variable runs in the
# task's memory cgroup, so it must fit there too. The task prints the
# SHA-256 digest of the value, never the value.
job "secrets-small" {
  type = "service"

  group "small" {
    task "tight" {
      driver = "containerd"
      user   = "1000"

      config {
        image   = "docker.io/hive/busybox:test"
        command = "sh"
        args    = ["-c", "trap 'exit 0' TERM; echo \"started pid $$\"; while true; do echo \"env=$(printf %s \"$DB_PASSWORD\" | sha256sum | cut -d' ' -f1)\"; sleep 1; done"]
      }

      secret "db" {
        name = "db-password"
        key  = "password"
        env  = "DB_PASSWORD"
      }

      resources {
        cpu    = 100
        memory = 32
      }
    }
  }
}
