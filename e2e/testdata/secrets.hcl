# The e2e secrets job: one allocation, two busybox tasks as user 1000 that
# read the secret default/db-password. They print SHA-256 digests of what
# they see, never the value itself, so the test can require that the value
# appears in no file on any node, task logs included.
#
# "app" gets it as a file (owned by its user, mode 0400) and as an
# environment variable, and restarts when it changes; "watcher" gets only
# the file (mode 0444) and is left running when it changes.
job "secrets" {
  type = "service"

  group "secrets" {
    count = 1

    task "app" {
      driver = "containerd"
      user   = "1000"

      config {
        image   = "docker.io/hive/busybox:test"
        command = "sh"
        args    = ["-c", "trap 'exit 0' TERM; echo \"started pid $$\"; while true; do echo \"file=$(sha256sum /run/secrets/db.txt | cut -d' ' -f1) env=$(printf %s \"$DB_PASSWORD\" | sha256sum | cut -d' ' -f1) mode=$(stat -c %a:%u /run/secrets/db.txt)\"; sleep 1; done"]
      }

      secret "db" {
        name        = "db-password"
        key         = "password"
        file        = "db.txt"
        mode        = "0400"
        uid         = 1000
        env         = "DB_PASSWORD"
        change_mode = "restart"
      }

      # Room for the hive secret-exec wrapper, the hive binary itself,
      # which runs in the task's cgroup before it execs sh;
      # secrets-small.hcl checks an env secret in a tight limit.
      resources {
        cpu    = 100
        memory = 256
      }
    }

    task "watcher" {
      driver = "containerd"
      user   = "1000"

      config {
        image   = "docker.io/hive/busybox:test"
        command = "sh"
        args    = ["-c", "trap 'exit 0' TERM; echo \"started pid $$\"; while true; do echo \"file=$(sha256sum /run/secrets/db.txt | cut -d' ' -f1) mode=$(stat -c %a:%u /run/secrets/db.txt)\"; sleep 1; done"]
      }

      secret "db" {
        name        = "db-password"
        key         = "password"
        file        = "db.txt"
        mode        = "0444"
        change_mode = "noop"
      }

      resources {
        cpu    = 100
        memory = 32
      }
    }
  }
}
