// Replaced by the HTTP core.
