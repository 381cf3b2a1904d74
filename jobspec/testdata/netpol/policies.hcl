# Network policies for the shop namespace, with an RBAC role in the same
# file (the acl package reads that one).
role "netpol-editor" {
  rule {
    resources = ["netpol"]
    actions   = ["read", "list", "create", "update"]
  }
}

network_policy "allow-web" {
  namespace = "shop"
  selector {
    match_labels = { app = "web" }
    match_expressions {
      key      = "tier"
      operator = "In"
      values   = ["front", "edge"]
    }
  }
  policy_types = ["ingress", "Egress"]
  ingress {
    from {
      pod_selector { match_labels = { app = "lb" } }
      namespace_selector {
        match_labels = { "hive.io/namespace" = "shop" }
      }
    }
    from {
      ip_block {
        cidr   = "10.0.0.0/8"
        except = ["10.1.0.0/16"]
      }
    }
    ports {
      port = 80
    }
    ports {
      protocol = "udp"
      port     = 5000
      end_port = 5010
    }
  }
  egress {
    to {
      namespace_selector {
        match_expressions {
          key      = "team"
          operator = "Exists"
        }
      }
    }
  }
}

network_policy "deny-all" {
  namespace = "shop"
  selector {}
  audit = true
}

network_policy "deny-all" {
  # Same name, other namespace (the default one).
  selector {}
}

admin_network_policy "deny-metadata" {
  priority = 10
  subject {
    namespace_selector {}
    pod_selector { match_labels = { app = "web" } }
  }
  egress {
    name   = "metadata"
    action = "deny"
    peers {
      ip_block { cidr = "169.254.169.254/32" }
    }
    ports {
      protocol = "TCP"
      port     = 80
    }
  }
  ingress {
    action = "PASS"
    peers {
      namespace_selector { match_labels = { team = "ops" } }
    }
  }
}
