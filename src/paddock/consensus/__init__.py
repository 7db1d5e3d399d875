"""paddock.consensus."""
