"""paddock.web."""
