"""The demo app's own code (its actions), shipped in the layer beside the core; `infra/demo/data/app.json` names it."""
