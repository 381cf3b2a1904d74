# Nothing declared is fine: apply does nothing.
