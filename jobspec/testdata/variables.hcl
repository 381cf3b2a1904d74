# A job configured through variables: a var file (variables.vars.hcl) and
# -var values (variables.vars.json) fill them in.
variable "image_tag" {
  type        = string
  description = "Tag of the API image to run."
}

variable "replicas" {
  type    = number
  default = 2

  validation {
    condition     = var.replicas >= 1 && var.replicas <= 20
    error_message = "replicas must be between 1 and 20."
  }
}

variable "datacenters" {
  type    = list(string)
  default = ["dc1"]
}

variable "env" {
  type    = string
  default = "staging"
}

variable "extra_env" {
  type    = map(string)
  default = {}
}

locals {
  name   = "api-${var.env}"
  labels = merge({ app = "api" }, { env = var.env })
  memory = max(64, var.replicas * 32)
}

job "api" {
  datacenters = var.datacenters
  meta        = local.labels

  group "api" {
    count = var.replicas

    task "server" {
      driver = "containerd"

      config {
        image = format("registry.example.com/api:%s", var.image_tag)
        args  = concat(["serve"], split(",", "--metrics,--verbose"))
      }

      env = merge(var.extra_env, {
        APP_NAME = upper(local.name)
        REGION   = lookup({ staging = "eu-west-1", prod = "us-east-1" }, var.env, "local")
        WORKERS  = tostring(min(8, var.replicas * 2))
        NAME_LEN = length(local.name)
        GREETING = trimspace(replace("  hello_world  ", "_", " "))
        OWNER    = coalesce("", "platform")
        LISTEN   = "0.0.0.0:${NOMAD_PORT_http}"
        NUMERIC  = tonumber("42") + 1
        TAGS     = join(",", [lower("A"), "b"])
      })

      resources {
        cpu    = 200
        memory = local.memory
      }
    }
  }
}
