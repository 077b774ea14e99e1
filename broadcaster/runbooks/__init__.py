"""Runbooks: named, ordered procedures of alerts, checked, rehearsed and run on a schedule.

* :mod:`.model` reads ``runbooks/*.toml`` (the format is documented there);
* :mod:`.check` checks a runbook against the catalogue and channels.toml;
* :mod:`.timeline` decides which step occurrence is due when (shared by rehearsal and runs);
* :mod:`.steps` writes what is due next into ``run_steps`` (the schedule itself);
* :mod:`.scheduler` is the host that leads by a lease and fires due steps from in-memory timers.

Firing a step and rehearsing a whole runbook are the application layer's
(:mod:`broadcaster.app.runbook`, :mod:`broadcaster.app.rehearse`).
"""
