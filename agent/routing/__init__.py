"""Alert management between the alert lifecycle and notify: grouping, inhibition, silences,
maintenance windows (Alertmanager's dispatch, inhibit, silence and time-interval stages).

Pure and in event time; the decision Engine (agent/pipeline.py) runs it, so `run` and
`replay` send the same messages. The public surface:

    Router(RouterSettings) / Router.from_config(agent_config)
      .add(transitions)        every Transition of the alert lifecycle, unchanged
      .advance(now)            take transitions and group flushes due up to `now` (event time)
      .finish(now)             end of a replay: what still waits is flushed
      .set_silences(list)      the operator's Silence records (agent.types), all of them
      .take_notices()          -> [Notice]: one message per group and flush (agent.types)
      .take_muted()            -> [Muted]: transitions held back, why and by whom
      .muted_now()             -> [MutedAlert]: what is muted at the time advanced to, until when
      .state() / .restore()    JSON for the engine checkpoint; for `status`, state()["muted"]
                               lists muted_now() and state()["recent"] the latest messages
                               (router.digest(notice) each)

Through the engine: `Engine.take_notices()`, `Engine.take_muted()`, `Engine.set_silences()`,
`Engine.router`; `Engine(..., batch=True)` for a replay (the router then decides at `finish`,
as a batch-scoring model hands its findings over late).

A `Notice` carries every alert of its group firing now (`firing`), those resolved since its
last message (`resolved`), which fingerprints are news, what its alerts inhibited (`muted`),
the highest severity (for routing to targets) and a reason: "first notification", "update",
"repeat" or "resolved". Its `key` is stable per group. Messages of a group come at most every
`group_interval`, and only with news: an alert firing that the last message did not show, a
resolution of an alert the people were told fires, an escalation, a new cause, a reminder.

    config.py     the operator options: Grouping (notify.group_by/_wait/_interval),
                  InhibitRule, MaintenanceWindow(s), Escalate (a rule's), Matchers
    timespec.py   weekly/dated time ranges (maintenance windows, a rule's active_hours)
    mutes.py      Muter stages: Inhibitor, Silencer, Maintenance; Mute
    groups.py     aggregation groups: when a group flushes, what its message says
    router.py     Router, RouterSettings, MutedAlert: time order, the mute chain, groups
    records.py    JSON forms of transitions and muted records

Import from the modules (`from agent.routing.router import Router`): this package imports
nothing, so agent.config and agent.alerts can use its config and time specs without a cycle.
"""
