role "r" {
  descripton = "typo"
  rule {
    resource = ["job"]
    actions  = ["read"]
  }
}

policy "p" {
}

binding "b" {
  role     = "r"
  subjects = ["user:a"]
  scope    = "global"
}
