# Roles and bindings for the payments team: every scope form, wildcards,
# built-in roles, service accounts and a heredoc description.

role "payments-owner" {
  description = <<-EOT
    Runs the payments namespace: everything in it,
    secret values included.
  EOT

  rule {
    resources = ["*"]
    actions   = ["*"]
    scope     = "namespace:payments"
  }
}

role "ledger-operator" {
  rule {
    resources = ["alloc", "alloc/logs", "alloc/exec"]
    actions   = ["read", "stop", "create"]
    scope     = "alloc:payments/*"
  }
  rule {
    resources = ["job"]
    actions   = ["read", "update", "stop"]
    scope     = "job:*/ledger"
  }
  rule {
    resources = ["node", "event"]
    actions   = ["read", "list", "drain"]
    # no scope: global
  }
}

binding "payments-owners" {
  role     = "payments-owner"
  subjects = ["group:payments", "user:bob.smith"]
}

binding "ledger-ci" {
  role      = "ledger-operator"
  subjects  = ["sa:payments/ci"]
  namespace = "payments"
}

binding "everyone-views" {
  role     = "viewer"
  subjects = ["group:staff"]
}
