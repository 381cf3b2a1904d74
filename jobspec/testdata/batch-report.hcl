# A nightly-style batch job that is retried on failure with backoff.
job "report" {
  type        = "batch"
  datacenters = ["dc1"]

  reschedule {
    attempts       = 3
    interval       = "6h"
    delay          = "30s"
    delay_function = "exponential"
    max_delay      = "10m"
    unlimited      = false
  }

  group "generate" {
    count = 2

    reschedule {
      attempts = 5
    }

    restart {
      attempts = 1
      delay    = "10s"
      interval = "1h"
      mode     = "fail"
    }

    task "render" {
      driver = "containerd"

      config {
        image   = "registry.example.com/reports/render@sha256:4f53cda18c2baa0c0354bb5f9a3ecbe5ed12ab4d8e11ba873c2f11161202b945"
        command = "/bin/render"
        args    = ["--since", "24h", "--out", "/tmp/report.pdf"]
      }

      env = {
        "REPORT_FORMAT" = "pdf"
        "TZ"            = "UTC"
      }

      resources {
        cpu    = 1000
        memory = 2048
      }
    }
  }
}
