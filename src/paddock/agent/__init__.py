"""paddock.agent: the agent daemon (``paddock agent``) that runs tasks for the masters.

Modules, outside in:

* ``server`` runs everything (HTTP server, leader detection, master link, shutdown);
* ``config`` turns flags into :class:`~paddock.agent.config.AgentConfig` (resources
  detected from the host where not given);
* ``leader`` finds the leading master (``zk://`` ``json.info_*`` znodes, or HOST:PORT);
* ``master_link`` speaks ``docs/agent-protocol.md``: REGISTER stream, events in, calls out;
* ``daemon`` is the agent's state and behaviour (tasks, frameworks, events); ``wire``
  builds what it tells the master (AgentInfo, Task, REGISTER);
* ``containerizers`` picks a task's runner: ``launcher`` (a process), ``custom_executor``
  or ``docker_containerizer`` (DOCKER containers through the Docker Engine API,
  ``docker_engine`` the client and container handle, ``docker_spec`` translating the
  TaskInfo, ``docker_recovery`` reattaching after a restart and removing orphan
  containers);
* ``custom_executor`` runs tasks that carry an ExecutorInfo under that executor (one
  process per executor id, ``executor_run`` its record and environment; the manager's
  parts: ``executor_base`` its state, ``executor_protocol`` the subscribed executor's
  events and calls, ``executor_shutdown`` kill and shutdown, ``executor_recovery``
  agent restarts) and ``executor_api`` serves it the v1 executor HTTP API
  (``POST /api/v1/executor``);
* ``task_outcome`` turns how any task ended into its terminal status (one place for
  every runner's states, reasons and messages); ``task_runners`` is what the runners
  share around it (the bug guard, the health watch);
* ``launcher`` is one process task's life (fetch, launch, health checks, report);
  ``tasks`` builds its command and environment; ``supervised`` is the agent's handle
  on it: the command runs under a per-task
  ``supervisor`` process (forked by the agent's ``zygote``) that outlives the agent and
  records the exit status in an outcome file; ``cgroups`` limits it (v1, v2);
  ``fetcher`` brings ``command.uris`` into the sandbox first; ``healthcheck`` checks it;
* ``status_updates`` makes updates reliable (per-task streams, head-only, retries);
* ``checkpoint`` is the durable layout under ``<work_dir>/meta`` (group-committed fsyncs);
* ``recovery`` reads it back at start-up (reconnecting to live supervisors, reporting
  tasks that ended while the agent was down); ``gc`` removes old sandboxes;
* ``http_api``, ``views`` and ``files`` serve ``/state``, metrics and sandbox files.

Sandboxes: ``<work_dir>/slaves/<agent id>/frameworks/<fw>/executors/<task>/runs/<uuid>/``
(``<executor id>`` instead of ``<task>`` for a custom executor and all its tasks)
with ``stdout`` and ``stderr``, also readable as
``/frameworks/<fw>/executors/<task>/runs/latest/...`` through ``/files/read``.
"""
