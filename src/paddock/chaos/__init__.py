"""The chaos lab: the whole cluster on separate hosts (network namespaces),
under partitions, crashes, pauses and slow links, with histories checked.

Entry point: ``paddock chaos run`` (:mod:`paddock.cli.chaos_cmd`), which calls
:func:`paddock.chaos.runner.run`.
"""
