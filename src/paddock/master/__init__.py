"""paddock.master."""
