"""Marathon's scheduling half: Mesos client, launch queue, offer matching, deployments,
health checks, reconciliation, leader latch, and the daemon that ties them together."""
