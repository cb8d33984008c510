"""The demo app's own code (its actions), shipped in the layer beside the core; `infra/demo/tenant/app.json` names it."""
