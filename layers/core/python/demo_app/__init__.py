"""The demo app's own code (its actions), shipped in the layer beside the core; the demo's app.json
(`infra/demo/tenant/app.json`) names it."""
