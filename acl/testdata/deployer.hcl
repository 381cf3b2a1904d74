role "deployer" {
  description = "deploys web"
  rule {
    resources = ["job", "alloc"]
    actions   = ["read", "list", "create"]
    scope     = "namespace:web"
  }
}

binding "alice-deploys" {
  role      = "deployer"
  subjects  = ["user:alice", "group:ops"]
  namespace = "web" # optional
}
