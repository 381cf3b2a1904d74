image_tag   = "v2.3.1"
replicas    = 3
datacenters = ["eu-west-1a", "eu-west-1b"]
extra_env = {
  FEATURE_FLAGS = "search,export"
}
