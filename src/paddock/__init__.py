"""paddock: a highly available cluster manager (coordination, masters, agents, apps)."""

__version__ = "0.1.0"
