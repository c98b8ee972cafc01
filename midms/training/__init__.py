"""Training-loop pieces shared by every model (Lightning callbacks)."""
