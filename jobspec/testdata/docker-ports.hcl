# A Nomad job written for the docker driver, with the docker driver's own
# security options, a service block and logs that Hive ignores.
job "grafana" {
  region      = "global"
  datacenters = ["dc1"]

  group "grafana" {
    network {
      port "http" {
        static = 3000
        to     = 3000
      }

      port "metrics" {}
    }

    service {
      name = "grafana"
      port = "http"

      check {
        type     = "http"
        path     = "/api/health"
        interval = "10s"
        timeout  = "2s"
      }
    }

    task "grafana" {
      driver = "docker"

      config {
        image    = "grafana/grafana:10.4.2"
        ports    = ["http", "metrics"]
        cap_drop = ["NET_RAW"]

        labels = {
          "com.example.team" = "observability"
        }
      }

      env {
        GF_SERVER_HTTP_PORT = "${NOMAD_PORT_http}"
        GF_PATHS_DATA       = "${NOMAD_TASK_DIR}/data"
      }

      meta {
        dashboard = "ops"
      }

      logs {
        max_files     = 3
        max_file_size = 10
      }

      kill_timeout = "20s"

      resources {
        cpu    = 300
        memory = 512
      }
    }
  }
}
