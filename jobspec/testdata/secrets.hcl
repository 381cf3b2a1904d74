# An API server that gets its database password as a file and as an
# environment variable, and a TLS key it reloads on SIGHUP.
job "api" {
  namespace = "payments"

  group "api" {
    task "server" {
      driver = "docker"
      user   = "1000:1000"

      config {
        image   = "registry.example.com/payments/api:2.4"
        command = "/usr/bin/api"
        args    = ["--config", "/etc/api.toml"]
      }

      env {
        LOG_LEVEL = "info"
      }

      secret "db" {
        name = "db-password"
        key  = "password"
        file = "db.txt"
        mode = "0440"
        uid  = 1000
        gid  = 1000
        env  = "DB_PASSWORD"
      }

      secret "tls-key" {
        name          = "api-tls"
        key           = "tls.key"
        file          = "tls/api.key"
        uid           = 1000
        change_mode   = "signal"
        change_signal = "hup"
      }

      secret "feature_flags" {
        name        = "flags"
        key         = "json"
        env         = "FEATURE_FLAGS"
        change_mode = "noop"
      }
    }

    task "worker" {
      config {
        image = "registry.example.com/payments/worker:2.4"
      }

      secret "db" {
        name = "db-password"
        key  = "password"
        env  = "DB_PASSWORD"
      }
    }
  }
}
