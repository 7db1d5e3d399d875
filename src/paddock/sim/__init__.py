"""paddock.sim."""
