role "broken" {
  rule {
    resources = ["job"
  }
}
