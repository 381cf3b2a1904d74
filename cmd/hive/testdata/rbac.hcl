# Roles and bindings for `hive apply -f` in the CLI tests.
role "deployer" {
  description = "deploys web"
  rule {
    resources = ["job", "alloc"]
    actions   = ["read", "list", "create", "update", "stop"]
    scope     = "namespace:web"
  }
  rule {
    resources = ["alloc/logs"]
    actions   = ["read"]
    scope     = "namespace:web"
  }
}

role "auditor" {
  rule {
    resources = ["audit"]
    actions   = ["read", "list"]
  }
}

binding "alice-deploys" {
  role      = "deployer"
  subjects  = ["user:alice", "group:ops"]
  namespace = "web"
}

binding "sec-audits" {
  role     = "auditor"
  subjects = ["group:security"]
}
