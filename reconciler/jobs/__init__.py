"""Where training and evaluation jobs run: in this process, or as tasks on a Ray cluster.

A job is a picklable value that knows its name, the key of what it makes and what it asks of
a machine, and runs when called (`interface.Job`). A runner runs it and hands back its value
and where it ran: `local.LocalJobRunner` calls it in this process, one at a time;
`ray_runner.RayJobRunner` submits it as a Ray task with the job's resource request and waits
for it within a deadline. `selection.job_runner` picks one from the settings
(`RECONCILER_JOBS`). Ray is an optional extra, imported only when a Ray runner runs a job.
"""
