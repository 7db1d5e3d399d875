"""paddock.marathon."""
