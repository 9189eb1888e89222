"""The chat rules (docs/architecture.md, "The layers"): the actions, delivery, the operator API
and the ports they need from outside. No AWS SDK here: the adapters are passed in by deps."""
