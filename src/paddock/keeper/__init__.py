"""paddock.keeper."""
