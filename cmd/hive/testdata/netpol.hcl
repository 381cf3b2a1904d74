# Roles and network policies in one file.
role "netpol-editor" {
  rule {
    resources = ["netpol"]
    actions   = ["read", "list", "create", "update"]
    scope     = "namespace:shop"
  }
}

network_policy "allow-web" {
  namespace = "shop"
  selector {
    match_labels = { app = "web" }
  }
  ingress {
    from {
      pod_selector { match_labels = { app = "lb" } }
    }
    ports {
      port = 80
    }
  }
}

admin_network_policy "deny-metadata" {
  priority = 10
  subject {
    namespace_selector {}
  }
  egress {
    action = "deny"
    peers {
      ip_block { cidr = "169.254.169.254/32" }
    }
  }
}
