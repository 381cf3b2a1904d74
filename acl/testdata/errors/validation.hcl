role "r" {
  rule {
    resources = ["job", "jobs"]
    actions   = ["read"]
  }
  rule {
    resources = ["job"]
    actions   = ["read", "drain"]
  }
  rule {
    resources = ["job"]
    actions   = ["read"]
    scope     = "namespaces:web"
  }
  rule {
    resources = ["secret/value"]
    actions   = ["read"]
    scope     = "job:web/frontend"
  }
}

role "Bad_Name" {
  rule {
    resources = ["job"]
    actions   = ["read"]
  }
}

role "admin" {
  rule {
    resources = ["*"]
    actions   = ["*"]
  }
}

role "empty" {
  description = "grants nothing"
}

binding "b" {
  role      = "r"
  subjects  = ["alice", "user:b"]
}

binding "c" {
  role      = "r"
  subjects  = ["user:a"]
  namespace = "*"
}

binding "b" {
  role     = "viewer"
  subjects = ["user:a"]
}
