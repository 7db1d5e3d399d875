"""paddock.agent."""
