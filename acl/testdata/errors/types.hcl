role "r" {
  description = ["not", "a", "string"]
  rule {
    resources = "job"
    actions   = ["read", null]
    scope     = var.scope
  }
}

binding "b" {
  role     = upper("r")
  subjects = []
}

binding "c" {
  subjects = ["user:a"]
}

role {
  rule {
    resources = ["job"]
    actions   = ["read"]
  }
}
