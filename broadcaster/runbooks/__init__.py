"""Runbooks: named, ordered procedures of alerts, checked, rehearsed and run on a schedule.

* :mod:`.model` reads ``runbooks/*.toml`` (the format is documented there);
* :mod:`.check` checks a runbook against the catalogue and channels.toml;
* :mod:`.timeline` decides which step occurrence is due when (shared by rehearsal and runs);
* :mod:`.firing` turns one occurrence into an alert through the real engine;
* :mod:`.rehearse` plays a whole runbook in dry-run mode on a virtual clock;
* :mod:`.scheduler` runs steps with APScheduler and a persistent job store.
"""
