"""The step graph a build runs: steps and edges (steps, builder), cache keys (keys), the
`--select` syntax (select), resolution against the cache (resolve), dry-run estimates
(estimate) and the `storyc graph` output formats (formats)."""
