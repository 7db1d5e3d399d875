"""paddock.cli."""
