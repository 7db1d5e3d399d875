"""paddock.marathon: apps that stay running — Marathon's v2 API over the coordination service.

The REST/state half (this package's modules so far):

* ``models`` — app definitions (pydantic, Marathon's field names and defaults), Marathon's
  validation rules (400 "Invalid JSON" for malformed/ill-typed bodies, 422 "Object is not
  valid" listing every offending field), the canonical form, tasks and task failures.
* ``groups`` — the group tree kept flat (``RootGroup``), group bodies, dependencies.
* ``planner`` — pure deployment plans (Stop/Start/Scale/Restart in dependency order),
  rollbacks, Marathon's rolling-restart arithmetic, kill selection, launch backoff.
* ``store`` — everything persistent, in ZooKeeper/keeper through kazoo: versioned root
  snapshots, one znode per app version, deployment and task records, framework id;
  commits are compare-and-set transactions.
* ``service`` — the operations behind the API (create/update/scale/restart/delete apps,
  groups, task kills, deployment cancel/rollback) as deployments, with locks and force.
* ``scheduler_iface`` — the seam to the scheduling half: ``MarathonCore`` (what the API
  calls), ``CoreHooks`` (what the scheduler calls back), ``InstantCore`` (a stand-in
  without Mesos: plans complete at once, tasks are records).
* ``events`` — the in-process event bus behind ``/v2/events``.
* ``api`` (+ ``api_apps``, ``api_groups``, ``api_misc``, ``api_common``) — the FastAPI
  app, Marathon's error bodies, the leader-proxy hook for standbys.
* ``live_server`` — run the API on a loopback port in a thread (tests, tools).

Wiring (what a daemon does)::

    store = MarathonStore(kazoo_client, "/marathon")
    service = MarathonService(store, core)     # core: a MarathonCore
    service.start()                            # loads state, resumes stored deployments
    app = create_api(service, ApiSettings(...))
"""
