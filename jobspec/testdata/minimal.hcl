job "hello" {
  group "hello" {
    task "hello" {
      config {
        image = "busybox:1.36"
        command = "sh"
        args = ["-c", "echo hello; sleep 3600"]
      }
    }
  }
}
