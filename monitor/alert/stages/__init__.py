"""The alert manager's stages, one small module each, in the order they run.

`submit(findings)`, each intake stage findings -> findings:
  `intake.Enrich` (evidence from the store) -> `intake.Scrub` (secrets) -> `intake.Record`
  (persist) -> `intake.Page` (high and critical page; the rest wait for the digest) ->
  `silence.Silence` -> `inhibit.Inhibit` (inhibits nothing today; its docstring says why) ->
  `fold.Fold` (findings -> per-fingerprint `AlertState`: `resolve`, `group`, `repeat`).
`flush()`:
  `group.due` (group_wait per account) -> `silence.Silence` again (added while it waited) ->
  `outbox.Outbox` (one alert per group, written before any send) -> `resolve.settle` (firing,
  resolved, or back) -> `digest.Digest` (once a day).
"""
